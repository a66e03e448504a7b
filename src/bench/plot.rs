//! A minimal SVG chart writer for `weir bench --plot`: stacked charts sharing a time axis, each with
//! line or point series. Hand-written SVG keeps a plotting library out of the build.

use std::fmt::Write as _;

pub struct Series {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
    /// Joined by a line (a rate over time) or drawn as dots (one value per event).
    pub joined: bool,
}

impl Series {
    pub fn line(name: &str, color: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            color: color.into(),
            points,
            joined: true,
        }
    }

    pub fn points(name: &str, color: &str, points: Vec<(f64, f64)>) -> Self {
        Series {
            joined: false,
            ..Series::line(name, color, points)
        }
    }
}

pub struct TimeChart {
    pub title: String,
    pub unit: String,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 800.0;
const CHART_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 40.0;

/// Renders the charts one above the other; the x axis (seconds) is shared.
pub fn render(charts: &[TimeChart]) -> String {
    let x_max = charts
        .iter()
        .flat_map(|c| c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let height = CHART_HEIGHT * charts.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    for (i, chart) in charts.iter().enumerate() {
        draw_chart(&mut svg, chart, i as f64 * CHART_HEIGHT, x_max);
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_chart(svg: &mut String, chart: &TimeChart, top: f64, x_max: f64) {
    let y_max = nice_ceiling(
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max),
    );
    let (left, right) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
    let (plot_top, bottom) = (top + MARGIN_TOP, top + CHART_HEIGHT - MARGIN_BOTTOM);
    let x = |v: f64| left + (right - left) * v / x_max;
    let y = |v: f64| bottom - (bottom - plot_top) * v / y_max;
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="{}" font-weight="bold">{} ({})</text>"#,
        top + 20.0,
        escape(&chart.title),
        escape(&chart.unit)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{plot_top}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        right - left,
        bottom - plot_top
    );
    for tick in 0..=4 {
        let value = y_max * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end">{}</text><line x1="{left}" x2="{right}" y1="{1}" y2="{1}" stroke="#eee"/>"##,
            left - 6.0,
            y(value),
            short_number(value)
        );
        let seconds = x_max * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{:.0} s</text>"#,
            x(seconds),
            bottom + 16.0,
            seconds
        );
    }
    for (n, series) in chart.series.iter().enumerate() {
        if series.joined {
            let path: Vec<String> = series
                .points
                .iter()
                .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
                series.color,
                path.join(" ")
            );
        } else {
            for (px, py) in &series.points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    x(*px),
                    y(*py),
                    series.color
                );
            }
        }
        let legend_x = right - 160.0;
        let legend_y = top + 20.0 + 14.0 * n as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{legend_x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{legend_y}">{}</text>"#,
            legend_y - 9.0,
            series.color,
            legend_x + 14.0,
            escape(&series.name)
        );
    }
}

/// The smallest of 1, 2, 5 × 10^k at or above `v` (at least 1), so axis ticks are round numbers.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn short_number(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.0}K", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_points_and_axes() {
        let svg = render(&[
            TimeChart {
                title: "rate <x>".into(),
                unit: "rows/s".into(),
                series: vec![Series::line(
                    "throughput",
                    "#000",
                    vec![(0.0, 0.0), (5.0, 1_500_000.0), (10.0, 1_200_000.0)],
                )],
            },
            TimeChart {
                title: "size".into(),
                unit: "MiB".into(),
                series: vec![Series::points("full", "#111", vec![(4.0, 30.0)])],
            },
        ]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("rate &lt;x&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains(">2.0M<"), "the throughput axis tops at 2M");
        assert!(svg.contains(">10 s<"));
        assert_eq!(nice_ceiling(31.0), 50.0);
        assert_eq!(nice_ceiling(0.2), 1.0);
    }
}
