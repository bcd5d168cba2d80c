//! One screen of `microcosm top`, as text.

use std::fmt::Write as _;
use std::path::Path;

use super::figures::Figures;

/// Readings older than this are called out: the stack may have stopped.
const STALE_AFTER_SECONDS: f64 = 5.0;

/// The screen for `figures`, read from `file` `age` seconds after it was
/// written; `color` highlights problems with ANSI colours.
pub(crate) fn screen(figures: &Figures, file: &Path, age: f64, color: bool) -> String {
    let warn = |text: String| {
        if color {
            format!("\x1b[1;33m{text}\x1b[0m")
        } else {
            text
        }
    };
    let mut out = String::new();
    let window = if figures.window_seconds > 0.0 {
        format!("rates over the last {:.0} s", figures.window_seconds)
    } else {
        "rates after the next reading".to_owned()
    };
    let _ = writeln!(
        out,
        "microcosm top · {} · written {age:.1} s ago · {window} · Ctrl-C quits",
        file.display()
    );
    if age > STALE_AFTER_SECONDS {
        let _ = writeln!(
            out,
            "{}",
            warn(format!(
                "no new metrics for {age:.0} s: is `microcosm up` still running?"
            ))
        );
    }
    let _ = writeln!(out);

    let cancelled: f64 = figures.cancelled.values().sum();
    let _ = writeln!(
        out,
        "ORDERS     placed {:.1}/s · ended {:.1}/s · confirmed {:.0} · cancelled {cancelled:.0}",
        figures.orders_per_second, figures.sagas_completed_per_second, figures.confirmed,
    );
    // Every reason is reported from the start, at 0: show the ones that happened.
    let reasons: Vec<String> = figures
        .cancelled
        .iter()
        .filter(|(_, count)| **count > 0.0)
        .map(|(reason, count)| format!("{reason} {count:.0}"))
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(out, "CANCELLED  {}", reasons.join(" · "));
    }
    let in_flight: Vec<String> = figures
        .in_flight
        .iter()
        .map(|(state, count)| format!("{state} {count:.0}"))
        .collect();
    let _ = writeln!(
        out,
        "IN FLIGHT  {}",
        if in_flight.is_empty() {
            "none".to_owned()
        } else {
            in_flight.join(" · ")
        }
    );
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "{:<11}{:>9}{:>8}{:>9}{:>9}{:>10}{:>13}{:>8}{:>12}",
        "SERVICE",
        "CALLS/s",
        "ERR/s",
        "p50 ms",
        "p99 ms",
        "MEMORY",
        "DB used/idle",
        "OUTBOX",
        "OUTBOX LAG"
    );
    for (name, service) in &figures.services {
        let memory = service
            .memory_bytes
            .map_or_else(|| "-".to_owned(), |bytes| format!("{:.1} MB", bytes / 1e6));
        let lag = format!("{:.1} s", service.outbox_lag_seconds);
        let line = format!(
            "{name:<11}{:>9.1}{:>8.1}{:>9}{:>9}{memory:>10}{:>13}{:>8.0}{lag:>12}",
            service.calls_per_second,
            service.errors_per_second,
            millis(service.p50_ms),
            millis(service.p99_ms),
            format!(
                "{:.0}/{:.0}",
                service.db_connections_used, service.db_connections_idle
            ),
            service.outbox_pending,
        );
        let troubled = service.errors_per_second > 0.0 || service.outbox_lag_seconds > 5.0;
        let _ = writeln!(out, "{}", if troubled { warn(line) } else { line });
    }
    let _ = writeln!(out);

    let _ = writeln!(
        out,
        "{:<30}{:<11}{:>6}{:>13}{:>14}",
        "CONSUMER", "SERVICE", "LAG", "REDELIVERED", "DEAD LETTERS"
    );
    for (name, consumer) in &figures.consumers {
        let line = format!(
            "{name:<30}{:<11}{:>6.0}{:>13.0}{:>14.0}",
            consumer.service, consumer.lag, consumer.redeliveries, consumer.dead_letters
        );
        let _ = writeln!(
            out,
            "{}",
            if consumer.dead_letters > 0.0 {
                warn(line)
            } else {
                line
            }
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "order → inventory, billing (GetOrder details): {:.1} calls/s · p99 {} ms",
        figures.client_calls_per_second,
        millis(figures.client_p99_ms)
    );
    out
}

fn millis(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::top::figures::{ConsumerFigures, ServiceFigures};

    #[test]
    fn the_screen_shows_outcomes_services_and_consumers_and_flags_trouble() {
        let mut figures = Figures {
            window_seconds: 10.0,
            orders_per_second: 12.0,
            confirmed: 100.0,
            ..Figures::default()
        };
        figures.cancelled.insert("out_of_stock".to_owned(), 3.0);
        figures.cancelled.insert("step_timeout".to_owned(), 0.0);
        figures.in_flight.insert("charging".to_owned(), 2.0);
        figures.services.insert(
            "order".to_owned(),
            ServiceFigures {
                calls_per_second: 12.0,
                p50_ms: Some(2.5),
                memory_bytes: Some(20e6),
                ..ServiceFigures::default()
            },
        );
        figures.consumers.insert(
            "inventory-commands".to_owned(),
            ConsumerFigures {
                service: "inventory".to_owned(),
                dead_letters: 1.0,
                ..ConsumerFigures::default()
            },
        );
        let text = screen(&figures, Path::new("m.json"), 0.5, false);
        assert!(text.contains("placed 12.0/s"), "{text}");
        assert!(text.contains("confirmed 100 · cancelled 3\n"), "{text}");
        assert!(text.contains("CANCELLED  out_of_stock 3\n"), "{text}");
        assert!(
            !text.contains("step_timeout"),
            "reasons at 0 are left out: {text}"
        );
        assert!(text.contains("IN FLIGHT  charging 2"), "{text}");
        assert!(text.contains("20.0 MB"), "{text}");
        assert!(text.contains("inventory-commands"), "{text}");
        assert!(!text.contains("no new metrics"), "{text}");
        let stale = screen(&figures, Path::new("m.json"), 30.0, true);
        assert!(stale.contains("no new metrics for 30 s"), "{stale}");
        assert!(
            stale.contains("\x1b[1;33m"),
            "dead letters are highlighted: {stale}"
        );
    }
}
