//! `microcosm top --html FILE`: the figures seen so far as a self-contained HTML
//! page, with the panels of the Grafana dashboard
//! (k8s/base/observability/grafana/microcosm-dashboard.json) drawn as SVG line
//! charts. It is how docs/observability.md's screenshot was taken where no
//! Grafana runs: a real run's figures, rendered by headless Chromium.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::figures::Figures;

/// Points kept per series (an hour at one reading a second).
const MAX_POINTS: usize = 3600;

/// The panels, in the dashboard's order: (title, unit).
const PANELS: [(&str, &str); 8] = [
    ("Throughput", "per second"),
    ("gRPC latency (server)", "ms"),
    ("Saga outcomes (total)", "orders"),
    ("Sagas in flight", "orders"),
    ("Outbox backlog", "rows"),
    ("Consumer lag", "messages"),
    ("Dead letters and redeliveries (total)", "messages"),
    ("Memory (resident)", "MB"),
];

/// A panel's series: name → (seconds since the first reading, value).
type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// Every series seen so far, by panel.
#[derive(Debug, Default)]
pub(crate) struct History {
    first_unix_ms: Option<u64>,
    last_unix_ms: u64,
    series: BTreeMap<&'static str, Series>,
}

impl History {
    /// Adds the figures of the reading written at `unix_ms`.
    pub(crate) fn record(&mut self, unix_ms: u64, figures: &Figures) {
        let first = *self.first_unix_ms.get_or_insert(unix_ms);
        self.last_unix_ms = unix_ms;
        let t = unix_ms.saturating_sub(first) as f64 / 1000.0;
        // `from_first_move`: a counter every service reports at 0 from the start
        // (each cancellation reason, each consumer's dead letters): drawn once
        // it moves, so the legend holds what happened.
        let mut add = |panel: &'static str, series: String, value: f64, from_first_move: bool| {
            let panel = self.series.entry(panel).or_default();
            if from_first_move && value == 0.0 && !panel.contains_key(&series) {
                return;
            }
            let points = panel.entry(series).or_default();
            if points.len() == MAX_POINTS {
                points.remove(0);
            }
            points.push((t, value));
        };
        let [
            throughput,
            latency,
            outcomes,
            in_flight,
            outbox,
            lag,
            dead,
            memory,
        ] = PANELS.map(|(title, _)| title);
        if figures.window_seconds > 0.0 {
            let (placed, ended) = (
                figures.orders_per_second,
                figures.sagas_completed_per_second,
            );
            add(throughput, "orders placed".to_owned(), placed, false);
            add(throughput, "sagas ended".to_owned(), ended, false);
        }
        add(outcomes, "confirmed".to_owned(), figures.confirmed, true);
        for (reason, count) in &figures.cancelled {
            add(outcomes, format!("cancelled: {reason}"), *count, true);
        }
        for (state, count) in &figures.in_flight {
            add(in_flight, state.clone(), *count, false);
        }
        for (name, service) in &figures.services {
            if let Some(p50) = service.p50_ms {
                add(latency, format!("{name} p50"), p50, false);
            }
            if let Some(p99) = service.p99_ms {
                add(latency, format!("{name} p99"), p99, false);
            }
            add(outbox, name.clone(), service.outbox_pending, false);
            if let Some(bytes) = service.memory_bytes {
                add(memory, name.clone(), bytes / 1e6, false);
            }
        }
        for (name, consumer) in &figures.consumers {
            add(lag, name.clone(), consumer.lag, false);
            let dead_letters = consumer.dead_letters;
            add(dead, format!("{name} dead letters"), dead_letters, true);
            add(
                dead,
                format!("{name} redeliveries"),
                consumer.redeliveries,
                true,
            );
        }
    }
}

/// Series colours (Grafana's classic palette).
const COLOURS: [&str; 10] = [
    "#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
    "#508642", "#cca300",
];

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 22.0;

/// The whole page.
pub(crate) fn render(history: &History) -> String {
    let span = history
        .last_unix_ms
        .saturating_sub(history.first_unix_ms.unwrap_or(history.last_unix_ms))
        as f64
        / 1000.0;
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Microcosm</title><style>\
         body{background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif;margin:16px}\
         h1{font-size:18px;margin:0 0 4px}p.sub{color:#8e8e9e;margin:0 0 12px}\
         .grid{display:grid;grid-template-columns:repeat(2,620px);gap:10px}\
         .panel{background:#181b1f;border:1px solid #2c3235;border-radius:2px;padding:8px 10px}\
         .panel h2{font-size:13px;font-weight:500;margin:0 0 4px}\
         .legend span{margin-right:12px;white-space:nowrap}.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}\
         svg text{fill:#8e8e9e;font-size:10px}</style></head><body>",
    );
    let _ = write!(
        page,
        "<h1>Microcosm</h1><p class=\"sub\">microcosm top --html · the main panels of the Grafana dashboard, \
         from the local stack's metrics · {span:.0} s of readings</p><div class=\"grid\">"
    );
    for (title, unit) in PANELS {
        let series = history.series.get(title);
        panel(&mut page, title, unit, series, span);
    }
    page.push_str("</div></body></html>\n");
    page
}

fn panel(page: &mut String, title: &str, unit: &str, series: Option<&Series>, span: f64) {
    let _ = write!(
        page,
        "<div class=\"panel\"><h2>{} <small>({unit})</small></h2>",
        escape(title)
    );
    let empty = BTreeMap::new();
    let series = series.unwrap_or(&empty);
    let max = series
        .values()
        .flatten()
        .map(|(_, value)| *value)
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let span = span.max(1.0);
    let x = |t: f64| LEFT + (WIDTH - LEFT - 8.0) * (t / span);
    let y = |value: f64| (HEIGHT - BOTTOM) - (HEIGHT - BOTTOM - 8.0) * (value / top);
    let _ = write!(page, "<svg width=\"{WIDTH}\" height=\"{HEIGHT}\">");
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let _ = write!(
            page,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#2c3235\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - 8.0,
            LEFT - 6.0,
            y(value) + 3.0,
            short(value),
            y0 = y(value),
        );
    }
    for step in 0..=5 {
        let t = span * f64::from(step) / 5.0;
        let _ = write!(
            page,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}s</text>",
            x(t),
            HEIGHT - 6.0,
            t
        );
    }
    for (index, points) in series.values().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(t, value)| format!("{:.1},{:.1}", x(*t), y(*value)))
            .collect();
        let _ = write!(
            page,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
    }
    page.push_str("</svg><div class=\"legend\">");
    if series.is_empty() {
        page.push_str("<span>no data</span>");
    }
    for (index, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let last = points.last().map_or(0.0, |(_, value)| *value);
        let _ = write!(
            page,
            "<span><i style=\"background:{colour}\"></i>{} <b>{}</b></span>",
            escape(name),
            short(last)
        );
    }
    page.push_str("</div></div>");
}

/// 1, 2 or 5 times a power of ten, at or above `value` (1 for 0).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|ceiling| *ceiling >= value)
        .unwrap_or(10.0 * magnitude)
}

fn short(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::top::figures::ServiceFigures;

    #[test]
    fn the_page_draws_every_panel_with_the_series_recorded() {
        let mut history = History::default();
        for second in 0..3u32 {
            let mut figures = Figures {
                window_seconds: 1.0,
                orders_per_second: f64::from(second) * 10.0,
                confirmed: f64::from(second) * 10.0,
                ..Figures::default()
            };
            figures.services.insert(
                "billing".to_owned(),
                ServiceFigures {
                    memory_bytes: Some(12e6),
                    ..ServiceFigures::default()
                },
            );
            history.record(1_000 * u64::from(second), &figures);
        }
        let page = render(&history);
        for (title, _) in PANELS {
            assert!(page.contains(title), "{title} is drawn");
        }
        assert!(page.contains("orders placed <b>20</b>"), "{page}");
        // Orders placed, sagas ended, confirmed, billing's outbox and its memory.
        assert_eq!(page.matches("<polyline").count(), 5, "{page}");
        assert!(page.contains("2 s of readings"));
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }
}
