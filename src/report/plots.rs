//! The report's plots, drawn in Rust with plotters, each as SVG (inlined into the HTML page) and
//! PNG (for slides and issue notes):
//! - latency vs achieved throughput — TTFT, TPOT, e2e; p50 solid, p99 dashed; one colour per
//!   benchmark: where latency turns up is the usable capacity;
//! - throughput vs offered rate, with the offered = achieved diagonal: saturation is where the
//!   curve leaves it;
//! - per benchmark, the latency distribution (CDF) of each stage from its histogram's percentiles;
//! - per benchmark, the client and the server on one time axis ([`super::timeline`]): rate, requests
//!   in flight, TTFT; the server's queue, batch, KV cache and GPU utilisation; stages shaded.
//!
//! Text is drawn with DejaVu Sans embedded in the binary (registered for plotters' `ab_glyph`
//! renderer), so nothing depends on the system's fonts or fontconfig. A figure with no data
//! (e.g. no rate stages, no scraped metrics) is not drawn at all.

use std::sync::Once;

use image::ImageEncoder as _;
use plotters::{coord::Shift, prelude::*};

use super::model::{Bench, HistoryPoint, Run};
use crate::schema::{Distribution, StageResult};

/// Tableau 10: distinct, colour-blind-friendlier than plotters' defaults.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Palette index.
    pub color: usize,
    /// Dashed (p99) or solid with markers (p50 and the rest).
    pub dashed: bool,
    /// (x, y) in drawing order.
    pub points: Vec<(f64, f64)>,
}

/// One chart.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    /// Title above it.
    pub title: String,
    /// X axis description.
    pub x: String,
    /// Y axis description.
    pub y: String,
    /// Lines.
    pub lines: Vec<Line>,
    /// Draw the y = x diagonal (offered = achieved).
    pub diagonal: bool,
    /// Shaded x ranges with a label (stage windows).
    pub bands: Vec<(f64, f64, String)>,
    /// The y axis is a fraction in [0, 1].
    pub unit_y: bool,
}

/// A figure: panels laid out in a grid.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem (`plots/{name}.svg`, `.png`).
    pub name: String,
    /// Heading in the page.
    pub title: String,
    /// What it shows and how to read it.
    pub caption: String,
    /// The panels.
    pub panels: Vec<Panel>,
    /// (rows, columns).
    pub grid: (usize, usize),
    /// Pixels.
    pub size: (u32, u32),
}

/// A figure drawn.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The figure.
    pub figure: Figure,
    /// SVG text.
    pub svg: String,
    /// PNG bytes.
    pub png: Vec<u8>,
}

/// Every figure of a run.
pub fn figures(run: &Run) -> Vec<Figure> {
    let mut out = vec![];
    for (metric, get, title) in [
        ("ttft", (|s| s.ttft_ms) as fn(&StageResult) -> Option<Distribution>, "TTFT"),
        ("tpot", |s| s.tpot_ms, "TPOT"),
        ("e2e", |s| s.e2e_ms, "end-to-end latency"),
    ] {
        out.push(latency_vs_throughput(run, metric, title, get));
    }
    out.push(throughput_vs_offered(run));
    for (i, b) in run.benchmarks.iter().enumerate() {
        out.push(cdf(b, i));
        out.extend(super::timeline::figure(b));
    }
    out.retain(|f| f.panels.iter().any(|p| p.lines.iter().any(|l| !l.points.is_empty())));
    out
}

fn known(v: f64) -> bool {
    v.is_finite()
}

fn latency_vs_throughput(
    run: &Run,
    metric: &str,
    title: &str,
    get: fn(&StageResult) -> Option<Distribution>,
) -> Figure {
    let mut lines = vec![];
    for (i, b) in run.benchmarks.iter().enumerate() {
        for (pct, dashed, pick) in
            [("p50", false, (|d| d.p50) as fn(&Distribution) -> f64), ("p99", true, |d: &Distribution| d.p99)]
        {
            let points: Vec<(f64, f64)> = b
                .stages()
                .iter()
                .filter_map(|s| {
                    let d = get(s).filter(|d| d.count > 0)?;
                    let x = s.throughput?.requests_per_second;
                    Some((x, pick(&d))).filter(|(x, y)| known(*x) && known(*y))
                })
                .collect();
            if !points.is_empty() {
                lines.push(Line { label: format!("{} {pct}", b.name), color: i, dashed, points });
            }
        }
    }
    Figure {
        name: format!("latency-vs-throughput-{metric}"),
        title: format!("{title} vs achieved throughput"),
        caption: format!(
            "{title} p50 (solid) and p99 (dashed) of each stage against the successful requests per second it achieved; one colour per benchmark. Where the curve turns up is the usable capacity."
        ),
        panels: vec![Panel {
            x: "achieved throughput (successful req/s)".into(),
            y: format!("{title} (ms)"),
            lines,
            ..Default::default()
        }],
        grid: (1, 1),
        size: (900, 500),
    }
}

fn throughput_vs_offered(run: &Run) -> Figure {
    let mut req = vec![];
    let mut tok = vec![];
    for (i, b) in run.benchmarks.iter().enumerate() {
        let rated: Vec<&StageResult> = b
            .stages()
            .iter()
            .filter(|s| s.offered.as_ref().is_some_and(|o| o.users == 0 && o.requested_rate.is_finite()))
            .collect();
        let offered = |s: &StageResult| s.offered.as_ref().map_or(f64::NAN, |o| o.requested_rate);
        let pts = |f: fn(&StageResult) -> f64| -> Vec<(f64, f64)> {
            rated.iter().map(|s| (offered(s), f(s))).filter(|(x, y)| known(*x) && known(*y)).collect()
        };
        let r = pts(|s| s.throughput.map_or(f64::NAN, |t| t.requests_per_second));
        let t = pts(|s| s.throughput.map_or(f64::NAN, |t| t.output_tokens_per_second));
        if !r.is_empty() {
            req.push(Line { label: b.name.clone(), color: i, dashed: false, points: r });
            tok.push(Line { label: b.name.clone(), color: i, dashed: false, points: t });
        }
    }
    Figure {
        name: "throughput-vs-offered".into(),
        title: "Throughput vs offered rate".into(),
        caption: "Successful requests per second and output tokens per second against the request rate offered (rate stages only; closed-loop and all-at-once stages have no offered rate). The grey diagonal is achieved = offered: saturation is where a curve falls away from it.".into(),
        panels: vec![
            Panel {
                title: "requests".into(),
                x: "offered rate (req/s)".into(),
                y: "successful req/s".into(),
                lines: req,
                diagonal: true,
                ..Default::default()
            },
            Panel {
                title: "output tokens".into(),
                x: "offered rate (req/s)".into(),
                y: "output tokens/s".into(),
                lines: tok,
                ..Default::default()
            },
        ],
        grid: (1, 2),
        size: (1100, 480),
    }
}

/// (value, cumulative fraction) points of a distribution's known percentiles, in order.
pub fn cdf_points(d: &Distribution) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = [
        (d.min, 0.0),
        (d.p0_1, 0.001),
        (d.p1, 0.01),
        (d.p5, 0.05),
        (d.p10, 0.10),
        (d.p25, 0.25),
        (d.p50, 0.50),
        (d.p75, 0.75),
        (d.p90, 0.90),
        (d.p95, 0.95),
        (d.p99, 0.99),
        (d.p999, 0.999),
        (d.max, 1.0),
    ]
    .into_iter()
    .filter(|(v, _)| known(*v))
    .collect();
    // Percentiles of an HdrHistogram are monotone; an LPG file's rounding may not be.
    for i in 1..pts.len() {
        pts[i].0 = pts[i].0.max(pts[i - 1].0);
    }
    pts
}

fn cdf(b: &Bench, _index: usize) -> Figure {
    let panel = |title: &str, get: fn(&StageResult) -> Option<Distribution>| Panel {
        title: title.into(),
        x: "ms".into(),
        y: "fraction of requests".into(),
        lines: b
            .stages()
            .iter()
            .enumerate()
            .filter_map(|(j, s)| {
                let d = get(s).filter(|d| d.count > 0)?;
                Some(Line { label: s.name.clone(), color: j, dashed: false, points: cdf_points(&d) })
            })
            .collect(),
        unit_y: true,
        ..Default::default()
    };
    Figure {
        name: format!("cdf-{}", b.name),
        title: format!("{}: latency distributions", b.name),
        caption: "The fraction of requests at or below each latency, per stage, from the percentiles of its histogram (min, p0.1 … p99.9, max).".into(),
        panels: vec![panel("TTFT", |s| s.ttft_ms), panel("TPOT", |s| s.tpot_ms), panel("end-to-end", |s| s.e2e_ms)],
        grid: (1, 3),
        size: (1200, 420),
    }
}

/// The history figures' panels: (figure, y axis).
const HISTORY_PANELS: &[(&str, &str)] =
    &[("TTFT p99", "ms"), ("TPOT p99", "ms"), ("e2e p99", "ms"), ("req/s", "successful req/s")];

/// Prefix of the history figures' names (`history-{benchmark}`).
pub const HISTORY_PREFIX: &str = "history-";

/// Per benchmark of `run` measured in earlier runs too: its headline figures over those runs
/// (x: the runs in the order they started, this one last), one line per stage.
pub fn history(run: &Run, points: &[HistoryPoint]) -> Vec<Figure> {
    let mut out = vec![];
    for b in &run.benchmarks {
        let mine: Vec<&HistoryPoint> = points.iter().filter(|p| p.benchmark == b.name).collect();
        let mut runs: Vec<(&str, &str)> = mine.iter().map(|p| (p.started_at.as_str(), p.run_id.as_str())).collect();
        runs.sort();
        runs.dedup();
        if runs.len() < 2 {
            continue;
        }
        let x = |p: &HistoryPoint| runs.iter().position(|r| r.1 == p.run_id).map_or(f64::NAN, |i| (i + 1) as f64);
        let mut stages: Vec<&str> = vec![];
        for p in &mine {
            if !stages.contains(&p.stage.as_str()) {
                stages.push(&p.stage);
            }
        }
        let panels = HISTORY_PANELS
            .iter()
            .map(|(metric, unit)| Panel {
                title: (*metric).into(),
                x: "run (oldest first; the last is this one)".into(),
                y: format!("{metric} ({unit})"),
                lines: stages
                    .iter()
                    .enumerate()
                    .map(|(j, stage)| Line {
                        label: (*stage).into(),
                        color: j,
                        dashed: false,
                        points: mine
                            .iter()
                            .filter(|p| p.stage == *stage && p.metric == *metric)
                            .map(|p| (x(p), p.value))
                            .filter(|(x, y)| known(*x) && known(*y))
                            .collect(),
                    })
                    .filter(|l| !l.points.is_empty())
                    .collect(),
                ..Default::default()
            })
            .collect();
        let listed: Vec<String> =
            runs.iter().enumerate().map(|(i, (at, id))| format!("{} = {id} ({at})", i + 1)).collect();
        out.push(Figure {
            name: format!("{HISTORY_PREFIX}{}", b.name),
            title: format!("{}: history", b.name),
            caption: format!(
                "TTFT, TPOT and end-to-end p99 and successful requests per second of each stage in every run of this benchmark the history holds, up to this one; one colour per stage. Runs: {}.",
                listed.join("; ")
            ),
            panels,
            grid: (2, 2),
            size: (1100, 640),
        });
    }
    out.retain(|f| f.panels.iter().any(|p| !p.lines.is_empty()));
    out
}

fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_err() {
            panic!("the embedded DejaVu Sans font does not load");
        }
    });
}

/// A figure that could not be drawn or encoded (the message names it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DrawError(String);

/// Draws a figure as SVG and PNG.
pub fn render(f: &Figure) -> Result<Rendered, DrawError> {
    render_both(f).map_err(DrawError)
}

fn render_both(f: &Figure) -> Result<Rendered, String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, f.size).into_drawing_area();
        draw(&root, f)?;
        root.present().map_err(|e| format!("{}: {e}", f.name))?;
    }
    let (w, h) = f.size;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, f.size).into_drawing_area();
        draw(&root, f)?;
        root.present().map_err(|e| format!("{}: {e}", f.name))?;
    }
    let mut png = vec![];
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, image::ColorType::Rgb8)
        .map_err(|e| format!("{}: {e}", f.name))?;
    Ok(Rendered { figure: f.clone(), svg, png })
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, f: &Figure) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("{}: {e}", f.name);
    root.fill(&WHITE).map_err(e)?;
    let body = root.titled(&f.title, ("sans-serif", 20)).map_err(e)?;
    for (area, panel) in body.split_evenly(f.grid).iter().zip(&f.panels) {
        draw_panel(area, panel).map_err(e)?;
    }
    Ok(())
}

/// (low, high) of `values` with a margin, never empty; from 0 when `from_zero`.
fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero && lo >= 0.0 {
        lo = 0.0;
    }
    if hi <= lo {
        hi = lo + lo.abs().max(1.0);
    }
    let pad = (hi - lo) * 0.05;
    (if from_zero && lo == 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.0)).chain(p.bands.iter().flat_map(|b| [b.0, b.1]));
    let (x0, x1) = range(xs, true);
    let (y0, y1) = if p.unit_y {
        (0.0, 1.02)
    } else {
        let ys = p.lines.iter().flat_map(|l| l.points.iter().map(|q| q.1));
        let (lo, hi) = range(ys, true);
        if p.diagonal { (lo.min(0.0), hi.max(x1)) } else { (lo, hi) }
    };
    let mut builder = ChartBuilder::on(area);
    if !p.title.is_empty() {
        builder.caption(&p.title, ("sans-serif", 15));
    }
    let mut chart = builder.margin(8).x_label_area_size(38).y_label_area_size(58).build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(&p.x)
        .y_desc(&p.y)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .max_light_lines(1)
        .light_line_style(RGBColor(242, 242, 242))
        .draw()?;
    for (k, (from, to, name)) in p.bands.iter().enumerate() {
        let shade = if k % 2 == 0 { RGBColor(31, 119, 180).mix(0.08) } else { RGBColor(255, 127, 14).mix(0.08) };
        chart.draw_series(std::iter::once(Rectangle::new([(*from, y0), (*to, y1)], shade.filled())))?;
        chart.draw_series(std::iter::once(Text::new(
            name.clone(),
            (*from, y1 - (y1 - y0) * 0.02),
            ("sans-serif", 11).into_font().color(&RGBColor(90, 90, 90)),
        )))?;
    }
    if p.diagonal {
        let top = x1.min(y1);
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (top, top)], RGBColor(160, 160, 160).stroke_width(1)))?
            .label("achieved = offered")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RGBColor(160, 160, 160)));
    }
    for l in &p.lines {
        let c = color(l.color);
        let style = c.stroke_width(2);
        if l.dashed {
            chart
                .draw_series(DashedLineSeries::new(l.points.iter().copied(), 7, 4, style))?
                .label(l.label.clone())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new([(0, 0), (7, 0)], style)
                        + PathElement::new([(11, 0), (18, 0)], style)
                });
        } else {
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), style))?
                .label(l.label.clone())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
            chart.draw_series(l.points.iter().map(|q| Circle::new(*q, 3, c.filled())))?;
        }
    }
    // A single line over stage windows is named in the title; a legend would hide a stage label
    // (drawn at the top): several lines over them get theirs at the bottom.
    let several = p.lines.len() > 1;
    if (p.bands.is_empty() || several) && p.lines.iter().any(|l| !l.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(if p.unit_y || !p.bands.is_empty() {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperLeft
            })
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_skip_unknown_percentiles_and_stay_monotone() {
        let nan = f64::NAN;
        let d = Distribution {
            count: 3,
            min: 1.0,
            p50: 5.0,
            p90: 4.9, // rounding in an LPG file
            p99: 9.0,
            max: 10.0,
            p95: nan,
            p999: nan,
            p0_1: nan,
            p1: nan,
            p5: nan,
            p10: nan,
            p25: nan,
            p75: nan,
            ..Default::default()
        };
        assert_eq!(cdf_points(&d), [(1.0, 0.0), (5.0, 0.5), (5.0, 0.9), (9.0, 0.99), (10.0, 1.0)]);
    }

    #[test]
    fn a_figure_renders_to_svg_and_png_with_text_from_the_embedded_font() {
        let f = Figure {
            name: "t".into(),
            title: "Title".into(),
            caption: String::new(),
            panels: vec![
                Panel {
                    title: "p".into(),
                    x: "x".into(),
                    y: "y".into(),
                    lines: vec![
                        Line { label: "a p50".into(), color: 0, dashed: false, points: vec![(1.0, 2.0), (2.0, 3.0)] },
                        Line { label: "a p99".into(), color: 0, dashed: true, points: vec![(1.0, 4.0), (2.0, 5.0)] },
                    ],
                    ..Default::default()
                },
                Panel {
                    title: "over time".into(),
                    lines: vec![Line {
                        label: "m".into(),
                        color: 1,
                        dashed: false,
                        points: vec![(0.0, 1.0), (2.0, 0.0)],
                    }],
                    bands: vec![(0.5, 1.5, "rate-1".into())],
                    ..Default::default()
                },
            ],
            grid: (1, 2),
            size: (600, 200),
        };
        let r = render(&f).unwrap();
        let doc = roxmltree::Document::parse(&r.svg).unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> =
            doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
        for t in ["Title", "a p50", "a p99", "rate-1", "x", "y"] {
            assert!(texts.contains(&t), "{t} in {texts:?}");
        }
        assert!(!texts.contains(&"m"), "no legend over stage windows");
        let img = image::load_from_memory(&r.png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (600, 200));
        let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 100)).count();
        assert!(dark > 200, "text and axes are drawn: {dark} dark pixels");
    }
}
