//! Drawing a trace as a waterfall: one line per span, indented under its
//! parent, with its start offset, duration and a bar on a shared time axis.
//! Failed spans are marked (and red on a terminal).

use std::collections::HashMap;
use std::fmt::Write;

/// One span, from whichever source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    pub(crate) span_id: String,
    pub(crate) parent_span_id: String,
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) start_micros: u64,
    pub(crate) duration_micros: u64,
    pub(crate) is_error: bool,
}

impl Span {
    /// A span from a line of the local collector's file.
    pub(crate) fn from_collector_json(value: &serde_json::Value) -> Self {
        let start = value["start_unix_nanos"].as_u64().unwrap_or(0);
        let end = value["end_unix_nanos"].as_u64().unwrap_or(start);
        Self {
            span_id: value["span_id"].as_str().unwrap_or_default().to_owned(),
            parent_span_id: value["parent_span_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: value["name"].as_str().unwrap_or_default().to_owned(),
            service: value["service"].as_str().unwrap_or_default().to_owned(),
            start_micros: start / 1_000,
            duration_micros: end.saturating_sub(start) / 1_000,
            is_error: value["is_error"].as_bool().unwrap_or(false),
        }
    }
}

const BAR_WIDTH: u64 = 30;

/// The waterfall as text.
pub(crate) fn render(trace_id: &str, order_id: &str, spans: &[Span], colour: bool) -> String {
    let start = spans
        .iter()
        .map(|span| span.start_micros)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|span| span.start_micros + span.duration_micros)
        .max()
        .unwrap_or(start);
    let total = (end - start).max(1);
    let services: std::collections::BTreeSet<&str> =
        spans.iter().map(|span| span.service.as_str()).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {trace_id}  order {order_id}\n{} spans across {} in {:.1} ms\n",
        spans.len(),
        services.into_iter().collect::<Vec<_>>().join(", "),
        total as f64 / 1_000.0
    );
    let _ = writeln!(
        out,
        "{:>9} {:>9}  {:<10} span",
        "start", "duration", "service"
    );
    for (depth, span) in in_tree_order(spans) {
        let offset = span.start_micros - start;
        let bar_start = offset * BAR_WIDTH / total;
        let bar_len = (span.duration_micros * BAR_WIDTH / total)
            .max(1)
            .min(BAR_WIDTH - bar_start.min(BAR_WIDTH - 1));
        let bar = format!(
            "{}{}{}",
            " ".repeat(bar_start as usize),
            "█".repeat(bar_len as usize),
            " ".repeat((BAR_WIDTH - bar_start - bar_len) as usize)
        );
        let marker = if span.is_error { " ✗ error" } else { "" };
        let line = format!(
            "{:>7.1}ms {:>7.1}ms  {:<10} |{bar}| {}{}{marker}",
            offset as f64 / 1_000.0,
            span.duration_micros as f64 / 1_000.0,
            span.service,
            "  ".repeat(depth),
            span.name
        );
        if span.is_error && colour {
            let _ = writeln!(out, "\x1b[31m{line}\x1b[0m");
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// Spans depth-first from the roots, children by start time; spans whose
/// parent is missing are shown as roots.
fn in_tree_order(spans: &[Span]) -> Vec<(usize, &Span)> {
    let known: std::collections::HashSet<&str> =
        spans.iter().map(|span| span.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        if span.parent_span_id.is_empty() || !known.contains(span.parent_span_id.as_str()) {
            roots.push(span);
        } else {
            children
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span);
        }
    }
    roots.sort_by_key(|span| span.start_micros);
    for list in children.values_mut() {
        list.sort_by_key(|span| span.start_micros);
    }
    let mut ordered = Vec::new();
    let mut stack: Vec<(usize, &Span)> = roots.into_iter().rev().map(|span| (0, span)).collect();
    while let Some((depth, span)) = stack.pop() {
        ordered.push((depth, span));
        if let Some(list) = children.get(span.span_id.as_str()) {
            stack.extend(list.iter().rev().map(|child| (depth + 1, *child)));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, name: &str, start: u64, duration: u64, is_error: bool) -> Span {
        Span {
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: name.into(),
            service: "order".into(),
            start_micros: start,
            duration_micros: duration,
            is_error,
        }
    }

    #[test]
    fn children_are_indented_under_their_parent_in_start_order_and_errors_marked() {
        let spans = [
            span("c", "a", "second child", 3_000, 1_000, true),
            span("a", "", "root", 0, 10_000, false),
            span("b", "a", "first child", 1_000, 1_000, false),
        ];
        let text = render("t", "o", &spans, false);
        let lines: Vec<&str> = text.lines().filter(|line| line.contains('|')).collect();
        assert!(lines[0].ends_with("| root"));
        assert!(lines[1].ends_with("|   first child"));
        assert!(lines[2].ends_with("|   second child ✗ error"));
        assert!(lines[2].trim_start().starts_with("3.0ms"));
    }
}
