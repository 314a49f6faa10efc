//! One line chart over the time of a run, drawn as inline SVG with `plotters`' SVG backend:
//! lines (solid or dashed, with gaps where an interval had no value), and vertical markers for
//! events (crashes, exits, restarts) labelled with their signature.
//!
//! `plotters` is built without its `ttf` feature, so it does not load system fonts: text is
//! emitted as SVG `<text>` for the browser to render, and its layout only estimates widths.

use std::io;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A colour, as `#rrggbb` components.
pub(crate) type Rgb = (u8, u8, u8);

/// One line of a chart.
pub(crate) struct Series {
    /// Legend text.
    pub name: String,
    /// Its colour.
    pub color: Rgb,
    /// Dashed (a secondary figure, like p50 beside p99).
    pub dashed: bool,
    /// `(x, y)` points in time order; `None` breaks the line (no value there).
    pub points: Vec<(f64, Option<f64>)>,
}

/// A vertical line at one moment, with an optional label.
pub(crate) struct Marker {
    /// Seconds since the load phase started.
    pub at: f64,
    /// Shown beside the line (once per distinct text); empty for none.
    pub label: String,
    /// What it marks, for the legend (`crash`, `restart`, ...).
    pub kind: String,
    /// Its colour.
    pub color: Rgb,
}

/// Chart size in pixels (the page scales it to its width).
const WIDTH: u32 = 960;
const HEIGHT: u32 = 300;
/// Marker labels drawn per chart, one per distinct text; further markers are lines only (the
/// events table lists all).
const MAX_LABELS: usize = 8;
/// Characters of a label kept.
const LABEL_CHARS: usize = 48;

fn to_io<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(LABEL_CHARS - 1).collect();
        out.push('…');
        out
    }
}

/// The consecutive runs of defined points of a series.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for &(x, y) in points {
        match y {
            Some(y) if y.is_finite() => cur.push((x, y)),
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A line chart of `series` over `0..x_max` seconds, with `markers`: an SVG document and its
/// legend in HTML.
pub(crate) fn line_chart(
    title: &str,
    y_desc: &str,
    x_max: f64,
    series: &[Series],
    markers: &[Marker],
) -> io::Result<String> {
    let x_max = if x_max.is_finite() && x_max > 0.0 {
        x_max
    } else {
        1.0
    };
    let y_top = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(0.0f64, f64::max);
    // Headroom for the marker labels; a flat zero line still gets an axis.
    let y_max = if y_top > 0.0 { y_top * 1.25 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(to_io)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(to_io)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the load started")
            .y_desc(y_desc)
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(210, 210, 210))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(to_io)?;
        let mut labelled: Vec<&str> = Vec::new();
        for m in markers {
            let c = color(m.color);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m.at, 0.0), (m.at, y_max)],
                    c.stroke_width(2),
                )))
                .map_err(to_io)?;
            if !m.label.is_empty()
                && labelled.len() < MAX_LABELS
                && !labelled.contains(&m.label.as_str())
            {
                let i = labelled.len();
                labelled.push(&m.label);
                // Stagger the labels down from the top so that neighbours do not overlap;
                // right of the middle, a label ends at its line instead of starting there.
                let y = y_max * (0.98 - 0.06 * (i % 4) as f64);
                let right = m.at > x_max * 0.55;
                let (at, h) = if right {
                    (m.at - x_max * 0.004, HPos::Right)
                } else {
                    (m.at + x_max * 0.004, HPos::Left)
                };
                let font = ("sans-serif", 13)
                    .into_font()
                    .color(&c)
                    .pos(Pos::new(h, VPos::Top));
                chart
                    .draw_series(std::iter::once(Text::new(shorten(&m.label), (at, y), font)))
                    .map_err(to_io)?;
            }
        }
        for s in series {
            let c = color(s.color);
            let style = c.stroke_width(2);
            for seg in segments(&s.points) {
                if let [only] = seg[..] {
                    // A value between two gaps: a dot, or it would not show at all.
                    chart
                        .draw_series(std::iter::once(Circle::new(only, 2, c.filled())))
                        .map_err(to_io)?;
                    continue;
                }
                if s.dashed {
                    chart
                        .draw_series(DashedLineSeries::new(seg, 6, 4, style))
                        .map_err(to_io)?;
                } else {
                    chart
                        .draw_series(LineSeries::new(seg, style))
                        .map_err(to_io)?;
                }
            }
        }
        root.present().map_err(to_io)?;
    }
    Ok(format!("{svg}\n{}", legend(series, markers)))
}

/// The legend, in HTML below the chart rather than inside it, where it would hide lines and
/// marker labels.
fn legend(series: &[Series], markers: &[Marker]) -> String {
    let mut items: String = series
        .iter()
        .map(|s| {
            let (r, g, b) = s.color;
            let style = if s.dashed { "dashed" } else { "solid" };
            format!(
                "<span class=\"key\"><i style=\"border-top: 3px {style} #{r:02x}{g:02x}{b:02x}\"></i>{}</span>",
                super::esc(&s.name)
            )
        })
        .collect();
    let mut kinds: Vec<(&str, Rgb)> = Vec::new();
    for m in markers {
        if !kinds.iter().any(|(k, c)| *k == m.kind && *c == m.color) {
            kinds.push((&m.kind, m.color));
        }
    }
    for (kind, (r, g, b)) in kinds {
        items.push_str(&format!(
            "<span class=\"key\"><i class=\"marker\" style=\"border-left: 3px solid #{r:02x}{g:02x}{b:02x}\"></i>{}</span>",
            super::esc(kind)
        ));
    }
    format!("<div class=\"legend\">{items}</div>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_at_gaps_and_markers_are_labelled_and_escaped() {
        let svg = line_chart(
            "latency",
            "ms",
            10.0,
            &[Series {
                name: "text p99".into(),
                color: (31, 119, 180),
                dashed: false,
                points: vec![
                    (0.5, Some(1.0)),
                    (1.5, Some(2.0)),
                    (2.5, None),
                    (3.5, Some(3.0)),
                    (4.5, Some(2.5)),
                ],
            }],
            &[Marker {
                at: 3.0,
                label: "assertion: <commit> & co".into(),
                kind: "crash".into(),
                color: (214, 39, 40),
            }],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        let lines = |color: &str| svg.matches(&format!("stroke=\"#{color}\"")).count();
        assert_eq!(lines("1F77B4"), 2, "two segments");
        assert_eq!(lines("D62728"), 1, "the marker");
        assert!(svg.contains("assertion: &lt;commit&gt; &amp; co"), "{svg}");
        assert!(svg.contains("<span class=\"key\"><i style=\"border-top: 3px solid #1f77b4\"></i>text p99</span>"), "{svg}");
    }

    #[test]
    fn an_empty_chart_still_has_axes() {
        let svg = line_chart("errors", "errors/s", 0.0, &[], &[]).unwrap();
        assert!(svg.contains("seconds since the load started"));
    }

    #[test]
    fn long_labels_are_shortened() {
        let s = shorten(&"x".repeat(100));
        assert_eq!(s.chars().count(), LABEL_CHARS);
        assert!(s.ends_with('…'));
    }
}
