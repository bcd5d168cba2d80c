//! How the client commands print: text for people by default, JSON with `--json`.
//!
//! Text aligns its columns, shows money in major units with two decimals (8900
//! minor units print as `89.00`) and times as RFC 3339 in UTC with milliseconds.
//! JSON is one document per command, or one object per line for a stream such
//! as `order watch`, so `jq` can follow it live. It is built by hand with
//! `serde_json::json!` (prost types do not derive `Serialize`) and keeps the
//! API's field names and units — `total_minor` in cents, statuses without their
//! enum prefix — so a script reads the same numbers grpcurl would show.
//! Errors always go to stderr as text; the exit code tells scripts what kind of
//! failure it was (see [`crate::endpoints`]).

use std::fmt;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::Timestamp;
use serde_json::Value;

use crate::endpoints::{EXIT_REFUSED, ServiceCallError};

/// Whether a command prints text for people or JSON for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Aligned lines and tables.
    Text,
    /// One JSON document (or one JSON object per line for streams).
    Json,
}

impl Format {
    /// The format chosen by the global `--json` flag.
    pub(crate) fn from_json_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Text }
    }
}

/// Prints one JSON document, indented for reading.
pub(crate) fn print_json(document: &Value) {
    // `{:#}` pretty-prints a JSON value.
    println!("{document:#}");
}

/// Prints one JSON object on one line, for streams that a script reads line by line.
/// Rust's stdout is line-buffered, so each line leaves as soon as it is printed.
pub(crate) fn print_json_line(object: &Value) {
    println!("{object}");
}

/// Money in minor units (cents) as major units with two decimals: `8900` is `89.00`.
pub(crate) fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let cents = minor.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// A protobuf timestamp as RFC 3339 in UTC with milliseconds, or `None` when
/// absent or out of range.
pub(crate) fn rfc3339(timestamp: Option<&Timestamp>) -> Option<String> {
    date_time(timestamp).map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A protobuf timestamp as RFC 3339 for text output: [`NOT_SET`] when absent.
pub(crate) fn rfc3339_text(timestamp: Option<&Timestamp>) -> String {
    rfc3339(timestamp).unwrap_or_else(|| NOT_SET.to_owned())
}

/// A protobuf timestamp's time of day in UTC, `HH:MM:SS.mmm`: enough for lines
/// printed live, a few milliseconds apart.
pub(crate) fn time_of_day(timestamp: Option<&Timestamp>) -> String {
    date_time(timestamp).map_or_else(
        || NOT_SET.to_owned(),
        |at| at.format("%H:%M:%S%.3f").to_string(),
    )
}

/// What text output shows for a value the server left empty.
pub(crate) const NOT_SET: &str = "-";

/// `text`, or [`NOT_SET`] when it is empty.
pub(crate) fn or_not_set(text: &str) -> String {
    if text.is_empty() {
        NOT_SET.to_owned()
    } else {
        text.to_owned()
    }
}

/// `text`, or JSON `null` when it is empty: proto3 cannot tell "empty" from
/// "absent", and `null` is what a script should see for "absent".
pub(crate) fn string_or_null(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::from(text)
    }
}

fn date_time(timestamp: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let timestamp = timestamp?;
    DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).ok()?)
}

/// Labelled values, one per line, with the values aligned:
///
/// ```text
/// customer  alice
/// balance   5000.00
/// ```
pub(crate) fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| width_of(label))
        .max()
        .unwrap_or(0);
    rows.iter()
        .map(|(label, value)| format!("{label:<width$}  {value}\n"))
        .collect()
}

/// Which side of its column a cell sticks to: text left, numbers right.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A table with a header row, printed with aligned columns two spaces apart.
#[derive(Debug)]
pub(crate) struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column titles and alignments.
    pub(crate) fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: one cell per column, in column order.
    pub(crate) fn push_row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn column_widths(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(index, (title, _))| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(index))
                    .map(|cell| width_of(cell))
                    .chain([width_of(title)])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn write_line<'a>(
        &self,
        f: &mut fmt::Formatter<'_>,
        widths: &[usize],
        cells: impl Iterator<Item = &'a str>,
    ) -> fmt::Result {
        let mut line = String::new();
        for ((cell, width), (_, align)) in cells.zip(widths).zip(&self.columns) {
            let padding = " ".repeat(width.saturating_sub(width_of(cell)));
            match align {
                Align::Left => line.push_str(&format!("{cell}{padding}  ")),
                Align::Right => line.push_str(&format!("{padding}{cell}  ")),
            }
        }
        writeln!(f, "{}", line.trim_end())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.column_widths();
        self.write_line(f, &widths, self.columns.iter().map(|(title, _)| *title))?;
        for row in &self.rows {
            self.write_line(f, &widths, row.iter().map(String::as_str))?;
        }
        Ok(())
    }
}

/// Columns are counted in characters, not bytes, so names like "27-inch
/// monitor" and "Café" line up alike.
fn width_of(text: &str) -> usize {
    text.chars().count()
}

/// Ends a client command: prints its error, if any, on stderr and chooses the
/// exit code — the service failure's own (1 refused, 2 bad URL, 3 unreachable,
/// see [`crate::endpoints`]), else 1.
pub(crate) fn finish(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let code = error
                .downcast_ref::<ServiceCallError>()
                .map_or(EXIT_REFUSED, ServiceCallError::exit_code);
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_shows_minor_units_as_major_units_with_two_decimals() {
        assert_eq!(money(8900), "89.00");
        assert_eq!(money(990), "9.90");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(0), "0.00");
        assert_eq!(money(-150), "-1.50");
        assert_eq!(money(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn timestamps_print_in_utc_with_milliseconds() {
        let at = Timestamp {
            seconds: 1_750_000_000,
            nanos: 123_456_789,
        };
        assert_eq!(
            rfc3339(Some(&at)).as_deref(),
            Some("2025-06-15T15:06:40.123Z")
        );
        assert_eq!(time_of_day(Some(&at)), "15:06:40.123");
        assert_eq!(rfc3339(None), None);
        assert_eq!(time_of_day(None), NOT_SET);
    }

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let mut table = Table::new(&[("SKU", Align::Left), ("PRICE", Align::Right)]);
        table.push_row(vec!["KB-01".into(), "89.00".into()]);
        table.push_row(vec!["USB-C-1M".into(), "9.90".into()]);
        assert_eq!(
            table.to_string(),
            "SKU       PRICE\nKB-01     89.00\nUSB-C-1M   9.90\n"
        );
    }

    #[test]
    fn fields_align_values_after_the_longest_label() {
        let text = fields(&[("customer", "alice".into()), ("balance", "5000.00".into())]);
        assert_eq!(text, "customer  alice\nbalance   5000.00\n");
    }
}
