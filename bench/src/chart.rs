//! A small SVG line chart: one panel per metric, x = requests in flight
//! (categorical), one line per series. People read a chart faster than a table.

use std::fmt::Write as _;

/// One line on a panel.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// (x label, y value) in x order.
    pub points: Vec<(String, f64)>,
}

/// One panel.
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Unit of the y axis.
    pub unit: String,
    /// The lines.
    pub series: Vec<Series>,
}

const COLORS: [&str; 6] = [
    "#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
];
const W: f64 = 520.0;
const H: f64 = 300.0;
const PAD: f64 = 55.0;

fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn panel(out: &mut String, panel: &Panel, x0: f64) {
    let xs: Vec<String> = panel
        .series
        .first()
        .map(|s| s.points.iter().map(|(x, _)| x.clone()).collect())
        .unwrap_or_default();
    let max = nice_max(
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|(_, y)| *y))
            .fold(0.0, f64::max),
    );
    let px = |i: usize| x0 + PAD + (W - 2.0 * PAD) * (i as f64) / ((xs.len().max(2) - 1) as f64);
    let py = |y: f64| H - PAD + 10.0 - (H - 2.0 * PAD) * y / max;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        x0 + PAD,
        panel.title
    );
    for tick in 0..=4 {
        let y = max * f64::from(tick) / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{}" x2="{}" y1="{y1:.1}" y2="{y1:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            x0 + PAD,
            x0 + W - PAD,
            x0 + PAD - 6.0,
            py(y) + 4.0,
            format_value(y),
            y1 = py(y)
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{x}</text>"#,
            px(i),
            H - PAD + 28.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">requests in flight</text><text x="{}" y="40" font-size="11">{}</text>"#,
        x0 + W / 2.0,
        H - PAD + 44.0,
        x0 + 8.0,
        panel.unit
    );
    for (n, series) in panel.series.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        let path: Vec<String> = series
            .points
            .iter()
            .enumerate()
            .map(|(i, (_, y))| format!("{:.1},{:.1}", px(i), py(*y)))
            .collect();
        let dash = if n == 0 {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="{}"/>"#,
            path.join(" ")
        );
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            x0 + PAD + 10.0,
            PAD - 12.0 + 14.0 * n as f64,
            x0 + PAD + 26.0,
            PAD - 8.0 + 14.0 * n as f64,
            series.name
        );
    }
}

fn format_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// An SVG document with the panels side by side.
pub fn svg(panels: &[Panel]) -> String {
    let mut out = String::new();
    let width = W * panels.len() as f64;
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut out, p, W * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series() {
        let panels = [Panel {
            title: "rps".into(),
            unit: "req/s".into(),
            series: vec![
                Series {
                    name: "ceiling".into(),
                    points: vec![("1".into(), 10.0), ("16".into(), 20.0)],
                },
                Series {
                    name: "GetBearer".into(),
                    points: vec![("1".into(), 9.0), ("16".into(), 18.0)],
                },
            ],
        }];
        let svg = svg(&panels);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("GetBearer") && svg.ends_with("</svg>\n"));
        assert_eq!(nice_max(43_000.0), 50_000.0);
    }
}
