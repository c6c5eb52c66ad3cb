//! The filter tables in f16 for the GPU (`[potential] gpu_tables = "f16"`, ml.wgsl
//! `HALF_TABLES`): a coarser grid of the f32 tables' nodes, each node's value and slope in one
//! word.

/// The f16 tables keep every HALF_STRIDE-th node of the f32 ones (whose values and slopes are
/// exact at the nodes). f16 keeps 11 bits of each value, and the Hermite slope takes the
/// difference of neighbouring nodes' values over the spacing, so on the f32 tables' 0.01 Å grid
/// the rounding would reach the forces as 1e-2 of the largest; a coarser grid divides that
/// rounding by a larger spacing, while its interpolation error (h⁴) stays below f16's.
pub(super) const HALF_STRIDE: usize = 8;

/// The largest magnitude an f16 table of these f32 rows stores (the slopes scaled to the
/// coarser spacing), NaN if any is not finite.
pub(super) fn half_range(data: &[f32], width: usize) -> f32 {
    data.chunks_exact(2 * width)
        .flat_map(|node| node.iter().enumerate().map(move |(o, x)| if o < width { x.abs() } else { HALF_STRIDE as f32 * x.abs() }))
        .fold(0.0, |m, x| if x.is_nan() || m.is_nan() { f32::NAN } else { m.max(x) })
}

/// Nodes of the f16 grid for an f32 table of `nodes` (the last one past the reach).
pub(super) fn half_nodes(nodes: usize) -> usize {
    (nodes - 2).div_ceil(HALF_STRIDE) + 2
}

/// A filter table in f16 (ml.wgsl `HALF_TABLES`) on the coarser grid: per node, one word a lane
/// holding the value (low half) and the new spacing times the slope (high half), rounded to
/// nearest; stored as the f32 with those bits (finite halves never make an f32 NaN or infinity,
/// so the bits pass unchanged). Nodes past the f32 table's last are zero, as the filter is
/// beyond the cutoff.
pub(super) fn half_table(data: &[f32], width: usize, nodes: usize) -> Vec<f32> {
    let half = |x: f32| half::f16::from_f32(x).to_bits() as u32;
    (0..half_nodes(nodes))
        .flat_map(|j| {
            let node = data.get(j * HALF_STRIDE * 2 * width..(j * HALF_STRIDE + 1) * 2 * width);
            (0..width).map(move |o| match node {
                Some(node) => f32::from_bits(half(node[o]) | half(HALF_STRIDE as f32 * node[width + o]) << 16),
                None => 0.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_eighth_node_in_half_precision_with_zeros_past_the_last() {
        // Two lanes, 19 nodes (17 intervals): value k + lane / 4, slope (h times) 0.01 k.
        let (width, nodes) = (2, 19);
        let data: Vec<f32> = (0..nodes).flat_map(|k| [k as f32, k as f32 + 0.25, 0.01 * k as f32, 0.01 * k as f32]).collect();
        assert_eq!(half_nodes(nodes), 5);
        let table = half_table(&data, width, nodes);
        assert_eq!(table.len(), 5 * width);
        for j in 0..5 {
            for o in 0..width {
                let bits = table[j * width + o].to_bits();
                let (value, slope) = (half::f16::from_bits(bits as u16).to_f32(), half::f16::from_bits((bits >> 16) as u16).to_f32());
                let k = j * HALF_STRIDE;
                let (want_value, want_slope) = if k < nodes { (data[k * 4 + o], HALF_STRIDE as f32 * data[k * 4 + 2 + o]) } else { (0.0, 0.0) };
                assert!((value - want_value).abs() <= want_value.abs() / 1024.0 && (slope - want_slope).abs() <= want_slope.abs() / 1024.0, "node {j} lane {o}: {value} {slope}, expected {want_value} {want_slope}");
            }
        }
        // The largest stored magnitude counts the slopes at the coarser spacing.
        assert_eq!(half_range(&data, width), 18.25);
        assert_eq!(half_range(&[1.0, 10000.0], 1), 80000.0);
        assert!(half_range(&[f32::NAN, 0.0], 1).is_nan());
    }
}
