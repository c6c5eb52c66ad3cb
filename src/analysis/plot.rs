//! Line plots as PNG, drawn by plotters (axes, ticks, grid, legend) with an embedded DejaVu
//! Sans (`assets/fonts`, through ab_glyph: no system font needed), so that labels carry their
//! units as written: "r (Å)", "MSD (Å²)", "ω". The RGB buffer is encoded by the `png` crate.

use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const W: u32 = 900;
const H: u32 = 560;
const FONT: &str = "sans-serif";

/// matplotlib's first colours: what readers of MD figures are used to.
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// Registers the embedded font once per process.
fn font_ready() -> std::io::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/fonts/DejaVuSans.ttf")).is_ok());
    if ok { Ok(()) } else { Err(std::io::Error::other("the embedded font (assets/fonts/DejaVuSans.ttf) did not load")) }
}

/// The range shown for `values` (finite ones): their extent, padded by 5 % on the value axis;
/// a flat or empty series gets a unit range.
fn extent(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        return (lo - 0.5, lo + 0.5);
    }
    let margin = pad * (hi - lo);
    (lo - margin, hi + margin)
}

/// A (name, x, y) curve.
pub type Series = (String, Vec<f64>, Vec<f64>);

/// A legend's corner, or none (where the caption and the axes' labels say what each curve is).
#[derive(Clone, Copy, PartialEq)]
pub enum Legend {
    /// Where g(r) and an MSD leave room.
    UpperLeft,
    UpperRight,
    None,
}

/// What one PNG shows: curves on the left axis; dashed curves in the colour of the curve they
/// belong to (by index), on the left axis (`fits`) or on a right axis of their own (`right`).
pub struct Figure<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
    pub fits: &'a [(usize, Series)],
    /// The right axis's label and curves.
    pub right: Option<(&'a str, &'a [(usize, Series)])>,
    /// Where the legend goes (drawn when there are several curves).
    pub legend: Legend,
    /// The colour of the first curve (by index; the next take the next ones): a panel of a
    /// stack keeps the colour its curve has in the others' legends.
    pub first_color: usize,
}

/// Plots each (name, x, y) series as a line, with a legend when there are several; writes
/// `path`.
pub fn line_plot(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> std::io::Result<()> {
    draw_figure(path, &Figure { title, x_label, y_label, series, fits: &[], right: None, legend: Legend::UpperRight, first_color: 0 })
}

/// Draws `figure` into `path`.
pub fn draw_figure(path: &Path, figure: &Figure) -> std::io::Result<()> {
    font_ready()?;
    let mut pixels = vec![255u8; (W * H * 3) as usize];
    let drawn: DrawResult = (|| {
        let root = BitMapBackend::with_buffer(&mut pixels, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root, figure, 26)?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| std::io::Error::other(format!("drawing {}: {e}", path.display())))?;
    write_png(path, &pixels, W, H)
}

/// Figures stacked top to bottom under one `title`, each with its own axes and caption (g(r)
/// per pair: an intramolecular O-H peak of g = 30 would flatten an O-O shell of g = 3 on one
/// axis); writes `path`.
pub fn draw_figures(path: &Path, title: &str, figures: &[Figure]) -> std::io::Result<()> {
    font_ready()?;
    let panel = 400;
    let height = 50 + panel * figures.len().max(1) as u32;
    let mut pixels = vec![255u8; (W * height * 3) as usize];
    let drawn: DrawResult = (|| {
        let root = BitMapBackend::with_buffer(&mut pixels, (W, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT, 26))?;
        for (figure, area) in figures.iter().zip(root.split_evenly((figures.len().max(1), 1))) {
            draw(&area, figure, 20)?;
        }
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| std::io::Error::other(format!("drawing {}: {e}", path.display())))?;
    write_png(path, &pixels, W, height)
}

/// Encodes an RGB buffer of `width` x `height` into `path`.
fn write_png(path: &Path, pixels: &[u8], width: u32, height: u32) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    writer.write_image_data(pixels).map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

/// A number for a legend: four significant digits, plain between 0.01 and 10⁴.
pub fn number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-2..1e4).contains(&v.abs()) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - v.abs().max(1e-300).log10().floor() as i64).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// A tick label: as short as the value allows ("450", "-1103.5", "0.25"), without a trailing ".0".
fn tick(v: f64) -> String {
    let text = format!("{:.4}", v);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".into() } else { text.to_string() }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn finite_points<'a>(x: &'a [f64], y: &'a [f64]) -> impl Iterator<Item = (f64, f64)> + Clone + 'a {
    x.iter().zip(y).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(&a, &b)| (a, b))
}

fn draw(root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, figure: &Figure, caption: u32) -> DrawResult {
    let right: &[(usize, Series)] = figure.right.map_or(&[], |r| r.1);
    let left = || figure.series.iter().chain(figure.fits.iter().map(|f| &f.1));
    let xs = left().chain(right.iter().map(|f| &f.1)).flat_map(|s| s.1.iter().copied());
    let (x0, x1) = extent(xs, 0.0);
    let (y0, y1) = extent(left().flat_map(|s| s.2.iter().copied()), 0.05);
    let color = |k: usize| COLORS[(figure.first_color + k) % COLORS.len()];
    let mut chart = ChartBuilder::on(root)
        .caption(figure.title, (FONT, caption))
        .margin(18)
        .x_label_area_size(56)
        .y_label_area_size(92)
        .right_y_label_area_size(if figure.right.is_some() { 80 } else { 0 })
        .build_cartesian_2d(x0..x1, y0..y1)?
        .set_secondary_coord(x0..x1, {
            let (r0, r1) = extent(right.iter().flat_map(|s| s.1.2.iter().copied()), 0.05);
            r0..r1
        });
    chart
        .configure_mesh()
        .x_desc(figure.x_label)
        .y_desc(figure.y_label)
        .label_style((FONT, 17))
        .axis_desc_style((FONT, 21))
        .max_light_lines(1)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()?;
    for (k, (name, x, y)) in figure.series.iter().enumerate() {
        let color = color(k);
        chart
            .draw_series(LineSeries::new(finite_points(x, y), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    let dashed_legend = |color: RGBColor| move |(x, y): (i32, i32)| PathElement::new(vec![(x, y), (x + 10, y)], color.stroke_width(2));
    for (k, (name, x, y)) in figure.fits {
        let color = color(*k);
        chart.draw_series(DashedLineSeries::new(finite_points(x, y), 8, 5, color.stroke_width(2)))?.label(name.as_str()).legend(dashed_legend(color));
    }
    if let Some((label, _)) = figure.right {
        chart.configure_secondary_axes().y_desc(label).label_style((FONT, 17)).axis_desc_style((FONT, 21)).draw()?;
        for (k, (name, x, y)) in right {
            let color = color(*k);
            chart.draw_secondary_series(DashedLineSeries::new(finite_points(x, y), 8, 5, color.stroke_width(2)))?.label(name.as_str()).legend(dashed_legend(color));
        }
    }
    if figure.series.len() + figure.fits.len() + right.len() > 1 && figure.legend != Legend::None {
        chart
            .configure_series_labels()
            .position(if figure.legend == Legend::UpperLeft { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::UpperRight })
            .label_font((FONT, 17))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .draw()?;
    }
    Ok(())
}

/// One panel of a stacked figure: its curves, and dashed reference curves drawn in the colour
/// of the curve they belong to (by index).
pub struct Panel {
    pub y_label: String,
    pub series: Vec<Series>,
    pub references: Vec<(usize, Series)>,
}

/// Panels stacked top to bottom over one x range (a thermo time series: temperature, energies,
/// pressure, ...), the x label under the last; writes `path`.
pub fn draw_panels(path: &Path, title: &str, x_label: &str, panels: &[Panel]) -> std::io::Result<()> {
    font_ready()?;
    let height = (120 + 190 * panels.len().max(1)) as u32;
    let mut pixels = vec![255u8; (W * height * 3) as usize];
    draw_stack(&mut pixels, height, title, x_label, panels).map_err(|e| std::io::Error::other(format!("drawing {}: {e}", path.display())))?;
    write_png(path, &pixels, W, height)
}

fn draw_stack(pixels: &mut [u8], height: u32, title: &str, x_label: &str, panels: &[Panel]) -> DrawResult {
    let all = || panels.iter().flat_map(|p| p.series.iter().chain(p.references.iter().map(|r| &r.1)));
    let (x0, x1) = extent(all().flat_map(|s| s.1.iter().copied()), 0.0);
    let root = BitMapBackend::with_buffer(pixels, (W, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 26))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (k, (panel, area)) in panels.iter().zip(&areas).enumerate() {
        let last = k + 1 == panels.len();
        let values = panel.series.iter().chain(panel.references.iter().map(|r| &r.1)).flat_map(|s| s.2.iter().copied());
        let (y0, y1) = extent(values, 0.08);
        let mut chart = ChartBuilder::on(area).margin(10).x_label_area_size(if last { 50 } else { 22 }).y_label_area_size(110).build_cartesian_2d(x0..x1, y0..y1)?;
        let mut mesh = chart.configure_mesh();
        mesh.y_label_formatter(&|v| tick(*v)).x_label_formatter(&|v| tick(*v)).y_desc(panel.y_label.as_str()).label_style((FONT, 15)).axis_desc_style((FONT, 18)).max_light_lines(1).light_line_style(RGBColor(240, 240, 240)).bold_line_style(RGBColor(205, 205, 205)).y_labels(5);
        if last {
            mesh.x_desc(x_label);
        }
        mesh.draw()?;
        for (c, (name, x, y)) in panel.series.iter().enumerate() {
            let color = COLORS[c % COLORS.len()];
            chart.draw_series(LineSeries::new(finite_points(x, y), color.stroke_width(2)))?.label(name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        }
        for (c, (name, x, y)) in &panel.references {
            let color = COLORS[c % COLORS.len()];
            chart
                .draw_series(DashedLineSeries::new(finite_points(x, y), 8, 5, color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).label_font((FONT, 15)).background_style(WHITE.mix(0.85)).border_style(RGBColor(160, 160, 160)).draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extent_pads_the_values_and_survives_flat_empty_and_non_finite_series() {
        assert_eq!(extent([0.0, 10.0].into_iter(), 0.05), (-0.5, 10.5));
        assert_eq!(extent([2.0, 2.0].into_iter(), 0.05), (1.5, 2.5));
        assert_eq!(extent([f64::NAN, f64::INFINITY].into_iter(), 0.05), (0.0, 1.0));
        assert_eq!((number(0.5914), number(12.345), number(2.5e-5), number(0.0)), ("0.5914".into(), "12.35".into(), "2.500e-5".into(), "0".into()));
    }

    #[test]
    fn a_plot_is_a_png_of_the_stated_size_with_dark_text_pixels() {
        let dir = std::env::temp_dir().join(format!("mdrun-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.png");
        let r: Vec<f64> = (0..200).map(|k| 0.05 * k as f64).collect();
        let g: Vec<f64> = r.iter().map(|r| 1.0 + (-(r - 2.8f64).powi(2) * 8.0).exp() * 2.0).collect();
        let series = vec![("O-O".to_string(), r.clone(), g.clone()), ("O-H".to_string(), r, g.iter().map(|v| v * 0.5).collect())];
        line_plot(&path, "radial distribution function", "r (Å)", "g(r)", &series).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (W, H));
        // Text and axes draw near-black pixels; the two series their colours.
        let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 60)).count();
        let blue = buf.chunks(3).filter(|p| p == &[31, 119, 180]).count();
        assert!(dark > 2000 && blue > 300, "dark {dark}, blue {blue}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
