//! Line plots as PNG: axes with ticks and numbers, labels, a legend. Small and dependency-light
//! (the `png` encoder only); text is drawn with a built-in 3x5 pixel font, upper case, scaled.

use std::path::Path;

const W: usize = 900;
const H: usize = 560;
const LEFT: usize = 100;
const RIGHT: usize = 30;
const TOP: usize = 50;
const BOTTOM: usize = 70;
const SCALE: usize = 2;

const COLORS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [255, 127, 14],
    [148, 103, 189],
    [23, 190, 207],
];

struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new() -> Canvas {
        Canvas { pixels: vec![255; W * H * 3] }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let o = 3 * (y as usize * W + x as usize);
            self.pixels[o..o + 3].copy_from_slice(&c);
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: bool) {
        // Bresenham.
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if thick {
                self.set(x + 1, y, c);
                self.set(x, y + 1, c);
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at (x, y); `vertical` runs it bottom to top.
    fn text(&mut self, x: i64, y: i64, text: &str, vertical: bool) {
        for (k, ch) in text.chars().enumerate() {
            let rows = glyph(ch);
            for (r, row) in rows.iter().enumerate() {
                for (c, bit) in row.bytes().enumerate() {
                    if bit != b'#' {
                        continue;
                    }
                    for a in 0..SCALE {
                        for b in 0..SCALE {
                            let (gx, gy) = ((c * SCALE + a) as i64, (r * SCALE + b) as i64);
                            let advance = (k * 4 * SCALE) as i64;
                            if vertical {
                                self.set(x + gy, y - advance - gx, [0, 0, 0]);
                            } else {
                                self.set(x + advance + gx, y + gy, [0, 0, 0]);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn text_width(text: &str) -> usize {
    text.chars().count() * 4 * SCALE
}

/// "Nice" tick positions covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-300);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|k| first + k as f64 * step)
        .take_while(|v| *v <= hi + 1e-9 * step)
        .collect()
}

fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.1e}").to_uppercase()
    }
}

/// Plots each (name, x, y) series as a line; writes `path`.
pub fn line_plot(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[(String, Vec<f64>, Vec<f64>)]) -> std::io::Result<()> {
    let finite = |v: &f64| v.is_finite();
    let xs = series.iter().flat_map(|s| s.1.iter().copied().filter(finite));
    let ys = series.iter().flat_map(|s| s.2.iter().copied().filter(finite));
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (mut y0, mut y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let to_px = |x: f64, y: f64| {
        (
            LEFT as i64 + ((x - x0) / (x1 - x0) * pw).round() as i64,
            (H - BOTTOM) as i64 - ((y - y0) / (y1 - y0) * ph).round() as i64,
        )
    };
    let mut canvas = Canvas::new();
    let grey = [200, 200, 200];
    let black = [0, 0, 0];
    for t in ticks(x0, x1) {
        let (px, _) = to_px(t, y0);
        canvas.line((px, TOP as i64), (px, (H - BOTTOM) as i64), grey, false);
        let label = tick_label(t);
        canvas.text(px - text_width(&label) as i64 / 2, (H - BOTTOM + 10) as i64, &label, false);
    }
    for t in ticks(y0, y1) {
        let (_, py) = to_px(x0, t);
        canvas.line((LEFT as i64, py), ((W - RIGHT) as i64, py), grey, false);
        let label = tick_label(t);
        canvas.text(LEFT as i64 - 8 - text_width(&label) as i64, py - 5, &label, false);
    }
    let (l, r, t, b) = (LEFT as i64, (W - RIGHT) as i64, TOP as i64, (H - BOTTOM) as i64);
    canvas.line((l, t), (r, t), black, false);
    canvas.line((l, b), (r, b), black, false);
    canvas.line((l, t), (l, b), black, false);
    canvas.line((r, t), (r, b), black, false);
    for (k, (_, x, y)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<(i64, i64)> = x.iter().zip(y).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(&a, &b)| to_px(a, b)).collect();
        for w in points.windows(2) {
            canvas.line(w[0], w[1], color, true);
        }
    }
    let title = title.to_uppercase();
    canvas.text((W / 2 - text_width(&title) / 2) as i64, 15, &title, false);
    let xl = x_label.to_uppercase();
    canvas.text((LEFT + (W - LEFT - RIGHT) / 2 - text_width(&xl) / 2) as i64, (H - 30) as i64, &xl, false);
    let yl = y_label.to_uppercase();
    canvas.text(15, (TOP + (H - TOP - BOTTOM) / 2 + text_width(&yl) / 2) as i64, &yl, true);
    // Legend, top right, when there is more than one series.
    if series.len() > 1 {
        for (k, (name, _, _)) in series.iter().enumerate() {
            let y = (TOP + 12 + 16 * k) as i64;
            let x = (W - RIGHT - 170) as i64;
            let color = COLORS[k % COLORS.len()];
            canvas.line((x, y + 5), (x + 24, y + 5), color, true);
            canvas.text(x + 32, y, &name.to_uppercase(), false);
        }
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, W as u32, H as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer.write_image_data(&canvas.pixels).map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)?;
    Ok(())
}

/// A 3x5 glyph; unknown characters draw as a box.
fn glyph(ch: char) -> [&'static str; 5] {
    match ch.to_ascii_uppercase() {
        'A' => [".#.", "#.#", "###", "#.#", "#.#"],
        'B' => ["##.", "#.#", "##.", "#.#", "##."],
        'C' => [".##", "#..", "#..", "#..", ".##"],
        'D' => ["##.", "#.#", "#.#", "#.#", "##."],
        'E' => ["###", "#..", "##.", "#..", "###"],
        'F' => ["###", "#..", "##.", "#..", "#.."],
        'G' => [".##", "#..", "#.#", "#.#", ".##"],
        'H' => ["#.#", "#.#", "###", "#.#", "#.#"],
        'I' => ["###", ".#.", ".#.", ".#.", "###"],
        'J' => ["..#", "..#", "..#", "#.#", ".#."],
        'K' => ["#.#", "#.#", "##.", "#.#", "#.#"],
        'L' => ["#..", "#..", "#..", "#..", "###"],
        'M' => ["#.#", "###", "###", "#.#", "#.#"],
        'N' => ["##.", "#.#", "#.#", "#.#", "#.#"],
        'O' => [".#.", "#.#", "#.#", "#.#", ".#."],
        'P' => ["##.", "#.#", "##.", "#..", "#.."],
        'Q' => [".#.", "#.#", "#.#", "##.", ".##"],
        'R' => ["##.", "#.#", "##.", "#.#", "#.#"],
        'S' => [".##", "#..", ".#.", "..#", "##."],
        'T' => ["###", ".#.", ".#.", ".#.", ".#."],
        'U' => ["#.#", "#.#", "#.#", "#.#", "###"],
        'V' => ["#.#", "#.#", "#.#", "#.#", ".#."],
        'W' => ["#.#", "#.#", "###", "###", "#.#"],
        'X' => ["#.#", "#.#", ".#.", "#.#", "#.#"],
        'Y' => ["#.#", "#.#", ".#.", ".#.", ".#."],
        'Z' => ["###", "..#", ".#.", "#..", "###"],
        '0' => ["###", "#.#", "#.#", "#.#", "###"],
        '1' => [".#.", "##.", ".#.", ".#.", "###"],
        '2' => ["##.", "..#", ".#.", "#..", "###"],
        '3' => ["##.", "..#", ".#.", "..#", "##."],
        '4' => ["#.#", "#.#", "###", "..#", "..#"],
        '5' => ["###", "#..", "##.", "..#", "##."],
        '6' => [".##", "#..", "###", "#.#", "###"],
        '7' => ["###", "..#", ".#.", ".#.", ".#."],
        '8' => ["###", "#.#", "###", "#.#", "###"],
        '9' => ["###", "#.#", "###", "..#", "##."],
        '.' => ["...", "...", "...", "...", ".#."],
        ',' => ["...", "...", "...", ".#.", "#.."],
        ':' => ["...", ".#.", "...", ".#.", "..."],
        '-' => ["...", "...", "###", "...", "..."],
        '+' => ["...", ".#.", "###", ".#.", "..."],
        '=' => ["...", "###", "...", "###", "..."],
        '(' => ["..#", ".#.", ".#.", ".#.", "..#"],
        ')' => ["#..", ".#.", ".#.", ".#.", "#.."],
        '/' => ["..#", "..#", ".#.", "#..", "#.."],
        '^' => [".#.", "#.#", "...", "...", "..."],
        '_' => ["...", "...", "...", "...", "###"],
        '²' => ["##.", ".#.", "##.", "...", "..."],
        'Å' => [".#.", "...", "###", "#.#", "#.#"],
        ' ' => ["...", "...", "...", "...", "..."],
        _ => ["###", "#.#", "#.#", "#.#", "###"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(-0.013, 0.021);
        assert!(t.len() >= 3 && t[0] >= -0.013 && *t.last().unwrap() <= 0.021);
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(0.0), "0");
    }
}
