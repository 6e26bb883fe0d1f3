//! The page's HTML: the header and the range form, then each section in turn.

use std::fmt::Write as _;

use super::model::PageData;
use super::recent::{clients_table, daily_chart};
use super::sections::{audit_table, charts, health_and_footer, nodes_table, tiles};
use super::svg::escape;

/// The page.
pub fn render(d: &PageData) -> String {
    let mut out = String::with_capacity(16 << 10);
    let path = escape(&d.path);
    let scope = match &d.node {
        Some(node) => format!("node {}", escape(node)),
        None => "all nodes".to_owned(),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>authstat — {scope}</title>\
         <link rel=\"icon\" href=\"{path}/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"{path}/style.css?v={v}\"></head><body>\
         <header><h1>authstat <small>{scope}</small></h1>",
        v = escape(&d.css_version)
    );
    if d.logout {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{path}/logout\"><button type=\"submit\">Log out</button></form>"
        );
    }
    out.push_str("</header><main>");

    // The month range and the node, as a plain GET form.
    let first = d
        .months
        .first()
        .map(|m| m.month.to_string())
        .unwrap_or_default();
    let last = d
        .months
        .last()
        .map(|m| m.month.to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "<form class=\"range\" method=\"get\" action=\"{path}\">\
         <label>From <input name=\"from\" value=\"{first}\" pattern=\"[0-9]{{6}}\" size=\"6\" inputmode=\"numeric\"></label>\
         <label>to <input name=\"to\" value=\"{last}\" pattern=\"[0-9]{{6}}\" size=\"6\" inputmode=\"numeric\"></label>\
         <label>Node <select name=\"node\"><option value=\"\">all nodes</option>"
    );
    for n in &d.nodes {
        let selected = if d.node.as_deref() == Some(n.node.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{id}\"{selected}>{id}</option>",
            id = escape(&n.node)
        );
    }
    out.push_str("</select></label><button type=\"submit\">Show</button></form>");

    tiles(&mut out, d);
    let range = format!("{first} to {last}, {scope}");
    charts(&mut out, d, &range);
    daily_chart(&mut out, d);
    clients_table(&mut out, d);
    audit_table(&mut out, d);
    nodes_table(&mut out, d, &path, &first, &last);
    health_and_footer(&mut out, d);
    out
}
