//! Hand-written, accessible SVG bar charts: `role="img"`, a `<title>` and `<desc>` per chart, a
//! `<title>` per bar (its exact value, the browser's tooltip), no script and no inline style
//! (colours come from CSS classes, so a strict CSP holds).

use std::fmt::Write as _;

/// Escapes text for HTML and SVG (element content and attribute values).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One series of a chart: a name (shown in the legend), the CSS class of its colour, a value
/// per column.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Its name.
    pub name: String,
    /// The class of its colour (`s0` … `s7`).
    pub class: String,
    /// One value per column.
    pub values: Vec<u64>,
}

/// A bar chart: one column per label, series stacked (or side by side), an optional line on its
/// own right-hand axis (a rate in per mille).
#[derive(Debug, Clone)]
pub(crate) struct BarChart<'a> {
    /// The chart's id (its title and description are referenced by it).
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// What it shows, in words.
    pub description: String,
    /// Column labels (months), and whether a column is incomplete (the current month).
    pub columns: Vec<(String, bool)>,
    /// The bars.
    pub series: Vec<Series>,
    /// Stacked, or side by side.
    pub stacked: bool,
    /// A line on its own axis: its name and one value per column in per mille (`None`: no
    /// value).
    pub rate: Option<(String, Vec<Option<u64>>)>,
}

const WIDTH: u64 = 720;
const HEIGHT: u64 = 240;
const LEFT: u64 = 56;
const RIGHT: u64 = 48;
const TOP: u64 = 12;
const BOTTOM: u64 = 36;
/// The height of the plotting area.
const PLOT_H: u64 = HEIGHT - TOP - BOTTOM;

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of ten).
fn nice_max(max: u64) -> u64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max.max(1) {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// Opens a chart's `<svg>` with its title and description.
fn open_chart(out: &mut String, id: &str, title: &str, description: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         aria-labelledby=\"{id}-t {id}-d\"><title id=\"{id}-t\">{title}</title>\
         <desc id=\"{id}-d\">{desc}</desc>",
        id = escape(id),
        title = escape(title),
        desc = escape(description)
    );
}

/// The grid and the left axis: 0, half, top.
fn grid(out: &mut String, top: u64, y: &dyn Fn(u64) -> u64) {
    for v in [0, top / 2, top] {
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{v}</text>",
            WIDTH - RIGHT,
            LEFT - 6,
            y(v) + 4,
            y = y(v)
        );
    }
}

impl BarChart<'_> {
    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let top = nice_max(self.column_max());
        let y = |v: u64| TOP + PLOT_H - v * PLOT_H / top;
        open_chart(&mut out, self.id, self.title, &self.description);
        grid(&mut out, top, &y);
        self.bars(&mut out, &y);
        if let Some((name, rates)) = &self.rate {
            self.rate_line(&mut out, name, rates);
        }
        out.push_str("</svg>");
        out
    }

    /// The largest column: the sum of its values when stacked, else its largest value.
    fn column_max(&self) -> u64 {
        (0..self.columns.len())
            .map(|i| {
                let values = self
                    .series
                    .iter()
                    .map(|s| s.values.get(i).copied().unwrap_or(0));
                if self.stacked {
                    values.sum()
                } else {
                    values.max().unwrap_or(0)
                }
            })
            .max()
            .unwrap_or(0)
    }

    /// The width of one column's slot.
    fn slot(&self) -> u64 {
        (WIDTH - LEFT - RIGHT) / self.columns.len().max(1) as u64
    }

    /// The bars and the month labels under them.
    fn bars(&self, out: &mut String, y: &dyn Fn(u64) -> u64) {
        let slot = self.slot();
        let groups = if self.stacked {
            1
        } else {
            self.series.len().max(1) as u64
        };
        let bar_w = (slot * 7 / 10 / groups).max(1);
        for (i, (label, incomplete)) in self.columns.iter().enumerate() {
            let x0 = LEFT + i as u64 * slot + (slot - bar_w * groups) / 2;
            let mut base = 0;
            for (k, series) in self.series.iter().enumerate() {
                let value = series.values.get(i).copied().unwrap_or(0);
                let (x, from) = if self.stacked {
                    (x0, base)
                } else {
                    (x0 + k as u64 * bar_w, 0)
                };
                let (y_top, y_bottom) = (y(from + value), y(from));
                let extra = if *incomplete { " incomplete" } else { "" };
                let _ = write!(
                    out,
                    "<rect class=\"bar {class}{extra}\" data-series=\"{name}\" data-month=\"{label}\" \
                     data-value=\"{value}\" x=\"{x}\" y=\"{y_top}\" width=\"{bar_w}\" height=\"{h}\">\
                     <title>{label} · {name}: {value}{note}</title></rect>",
                    class = escape(&series.class),
                    name = escape(&series.name),
                    label = escape(label),
                    h = y_bottom - y_top,
                    note = if *incomplete { " (month not over)" } else { "" }
                );
                if self.stacked {
                    base += value;
                }
            }
            let _ = write!(
                out,
                "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>",
                LEFT + i as u64 * slot + slot / 2,
                HEIGHT - BOTTOM + 16,
                escape(label),
                if *incomplete { "*" } else { "" }
            );
        }
    }

    /// The rate on its own (right) axis: a line with a point per month that has one.
    fn rate_line(&self, out: &mut String, name: &str, rates: &[Option<u64>]) {
        let slot = self.slot();
        let rate_top = nice_max(rates.iter().flatten().copied().max().unwrap_or(0));
        let ry = |v: u64| TOP + PLOT_H - v * PLOT_H / rate_top;
        for v in [0, rate_top] {
            let _ = write!(
                out,
                "<text class=\"axis rate\" x=\"{}\" y=\"{}\">{}%</text>",
                WIDTH - RIGHT + 6,
                ry(v) + 4,
                per_mille_text(v)
            );
        }
        let points: Vec<(u64, u64, u64, &str)> = rates
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.map(|r| {
                    (
                        LEFT + i as u64 * slot + slot / 2,
                        ry(r),
                        r,
                        self.columns[i].0.as_str(),
                    )
                })
            })
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _, _)| format!("{x},{y}"))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"rate\" points=\"{}\"/>",
            path.join(" ")
        );
        for (x, y, r, label) in points {
            let _ = write!(
                out,
                "<circle class=\"rate\" data-series=\"{n}\" data-month=\"{l}\" data-value=\"{r}\" \
                 cx=\"{x}\" cy=\"{y}\" r=\"3\"><title>{l} · {n}: {p}%</title></circle>",
                n = escape(name),
                l = escape(label),
                p = per_mille_text(r)
            );
        }
    }

    /// The same numbers as a table (for the `<details>` beside the chart).
    pub fn table(&self) -> String {
        let mut out = String::from("<table><thead><tr><th scope=\"col\">month</th>");
        for s in &self.series {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(&s.name));
        }
        if let Some((name, _)) = &self.rate {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(name));
        }
        out.push_str("</tr></thead><tbody>");
        for (i, (label, incomplete)) in self.columns.iter().enumerate() {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}{}</th>",
                escape(label),
                if *incomplete { " (not over)" } else { "" }
            );
            for s in &self.series {
                let _ = write!(out, "<td>{}</td>", s.values.get(i).copied().unwrap_or(0));
            }
            if let Some((_, rates)) = &self.rate {
                match rates.get(i).copied().flatten() {
                    Some(r) => {
                        let _ = write!(out, "<td>{}%</td>", per_mille_text(r));
                    }
                    None => out.push_str("<td>–</td>"),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }
}

/// A line chart of one value per labelled point (daily active users): a polyline, a dot per
/// point with its exact value as the tooltip, a label every few points.
#[derive(Debug, Clone)]
pub(crate) struct LineChart<'a> {
    /// The chart's id.
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// What it shows, in words.
    pub description: String,
    /// One label and one value per point.
    pub points: Vec<(String, u64)>,
}

impl LineChart<'_> {
    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let top = nice_max(self.points.iter().map(|p| p.1).max().unwrap_or(0));
        let y = |v: u64| TOP + PLOT_H - v * PLOT_H / top;
        let n = self.points.len().max(1) as u64;
        let slot = (WIDTH - LEFT - RIGHT) / n;
        let x = |i: usize| LEFT + slot * i as u64 + slot / 2;
        open_chart(&mut out, self.id, self.title, &self.description);
        grid(&mut out, top, &y);
        let path: Vec<String> = self
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{},{}", x(i), y(p.1)))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line\" points=\"{}\"/>",
            path.join(" ")
        );
        let every = (self.points.len() / 6).max(1);
        for (i, (label, v)) in self.points.iter().enumerate() {
            let _ = write!(
                out,
                "<circle class=\"dot s0\" cx=\"{}\" cy=\"{}\" r=\"3\"><title>{}: {v}</title></circle>",
                x(i),
                y(*v),
                escape(label)
            );
            if i % every == 0 || i + 1 == self.points.len() {
                let _ = write!(
                    out,
                    "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    x(i),
                    HEIGHT - BOTTOM + 16,
                    escape(label)
                );
            }
        }
        out.push_str("</svg>");
        out
    }

    /// The same numbers as a table (for the `<details>` beside the chart).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "<table><thead><tr><th scope=\"col\">day</th><th scope=\"col\">active users</th></tr></thead><tbody>",
        );
        for (label, v) in &self.points {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{v}</td></tr>",
                escape(label)
            );
        }
        out.push_str("</tbody></table>");
        out
    }
}

/// Per mille as a percentage with one decimal (`25` → `2.5`).
pub(crate) fn per_mille_text(v: u64) -> String {
    format!("{}.{}", v / 10, v % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(stacked: bool) -> BarChart<'static> {
        BarChart {
            id: "c",
            title: "Tokens <per> month",
            description: "tokens".into(),
            columns: vec![("202401".into(), false), ("202402".into(), true)],
            series: vec![
                Series {
                    name: "a&b".into(),
                    class: "s0".into(),
                    values: vec![3, 7],
                },
                Series {
                    name: "c".into(),
                    class: "s1".into(),
                    values: vec![1, 0],
                },
            ],
            stacked,
            rate: Some(("failure rate".into(), vec![Some(25), None])),
        }
    }

    #[test]
    fn bars_carry_their_values_and_the_markup_is_accessible() {
        let svg = chart(true).render();
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\""));
        assert!(svg.contains("<title id=\"c-t\">Tokens &lt;per&gt; month</title>"));
        assert_eq!(svg.matches("<rect class=\"bar").count(), 4);
        assert!(svg.contains("<title>202401 · a&amp;b: 3</title>"));
        assert!(svg.contains("<title>202402 · a&amp;b: 7 (month not over)</title>"));
        assert!(svg.contains("bar s0 incomplete"));
        assert!(svg.contains("<title>202401 · failure rate: 2.5%</title>"));
        assert!(!svg.contains("style="), "no inline style: a strict CSP");
        // Stacked: the second series sits on the first.
        let table = chart(true).table();
        assert!(table.contains(
            "<tr><th scope=\"row\">202402 (not over)</th><td>7</td><td>0</td><td>–</td></tr>"
        ));
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(4200), 5000);
        // Side by side, the tallest bar reaches the top of a round axis.
        let svg = chart(false).render();
        assert!(svg.contains(">10</text>"), "{svg}");
    }
}
