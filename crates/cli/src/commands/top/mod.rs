//! `microcosm top`: the system's key figures, live in the terminal, from the
//! local stack's metrics (no Prometheus needed).
//!
//! `microcosm up`'s collector keeps the latest metric points in
//! `.microcosm/metrics.json`, replaced each time a service exports (every
//! second: `OTEL_METRIC_EXPORT_INTERVAL` in deploy/env). `top` reads it every
//! second and shows totals from the newest reading and rates and latency
//! percentiles over the last `--window` seconds of readings.

mod figures;
mod html;
mod render;

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use self::figures::{Figures, Snapshot};
use self::html::History;

/// Arguments of `microcosm top`.
#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// The metrics file `microcosm up`'s collector writes.
    #[arg(long, default_value = ".microcosm/metrics.json")]
    metrics_file: PathBuf,
    /// Rates and latency percentiles cover this many seconds of readings.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=600))]
    window: u64,
    /// Print one screen (after two readings, for the rates) and exit.
    #[arg(long)]
    once: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Also keep an HTML dashboard of the figures seen so far in this file,
    /// rewritten every second (a Grafana-less snapshot: open it in a browser).
    #[arg(long)]
    html: Option<PathBuf>,
}

/// How often the file is read and the screen redrawn.
const REFRESH: Duration = Duration::from_secs(1);
/// How long a missing metrics file is waited for before `top` gives up.
const FIRST_READING_GRACE: Duration = Duration::from_secs(5);

/// Shows the figures every second until Ctrl-C (or once).
pub(crate) async fn run(args: TopArgs, json: bool) -> anyhow::Result<ExitCode> {
    let once = args.once || json;
    let live = !once && std::io::stdout().is_terminal();
    let mut readings: VecDeque<Snapshot> = VecDeque::new();
    let mut history = History::default();
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(REFRESH);
    // One listener for the whole run, so a Ctrl-C between two ticks is not missed.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut interrupted => break,
        }
        let reading = match read_metrics_file(&args.metrics_file) {
            Ok(reading) => reading,
            // The stack may still be starting: its first export comes within
            // a second or two of the services being up.
            Err(_) if readings.is_empty() && started.elapsed() < FIRST_READING_GRACE => {
                if live {
                    println!(
                        "\x1b[H\x1b[2Jwaiting for the first metrics in {} (is `microcosm up` running?)",
                        args.metrics_file.display()
                    );
                }
                continue;
            }
            Err(error) => match readings.back() {
                // A stack that stopped leaves its last reading: keep showing
                // it (as stale) rather than exit.
                Some(last) if !once => last.clone(),
                _ => return Err(error),
            },
        };
        let fresh = readings
            .back()
            .is_none_or(|last| last.updated_unix_ms != reading.updated_unix_ms);
        if fresh {
            readings.push_back(reading);
        }
        // Keep the readings of the window, and the one just before it.
        let newest = readings.back().map_or(0, |newest| newest.updated_unix_ms);
        while readings.len() > 2 && readings[1].updated_unix_ms + args.window * 1000 <= newest {
            readings.pop_front();
        }
        let (Some(now), before) = (readings.back(), readings.front()) else {
            continue;
        };
        let before = (readings.len() > 1).then_some(before).flatten();
        let figures = Figures::compute(before, now);
        let stale = age_seconds(now.updated_unix_ms);
        if let (Some(path), true) = (&args.html, fresh) {
            history.record(now.updated_unix_ms, &figures);
            std::fs::write(path, html::render(&history))
                .with_context(|| format!("could not write {}", path.display()))?;
        }
        if once {
            // Rates need two readings; the file changes every second or so.
            if before.is_none() && started.elapsed() < Duration::from_secs(5) {
                continue;
            }
            if json {
                println!("{}", figures.to_json());
            } else {
                print!(
                    "{}",
                    render::screen(&figures, &args.metrics_file, stale, false)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let screen = render::screen(&figures, &args.metrics_file, stale, live);
        if live {
            // Home, clear, draw: one frame per second.
            print!("\x1b[H\x1b[2J{screen}");
        } else {
            println!("{screen}");
        }
        if args
            .duration
            .is_some_and(|limit| started.elapsed() >= Duration::from_secs(limit))
        {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_metrics_file(path: &Path) -> anyhow::Result<Snapshot> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        anyhow::anyhow!(
            "cannot read {} ({error}): is the local stack running? Start it with `microcosm up` \
             (in this directory), or point --metrics-file at its .microcosm/metrics.json",
            path.display()
        )
    })?;
    let document: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a metrics file", path.display()))?;
    Snapshot::from_json(&document)
        .with_context(|| format!("{} is not a metrics file", path.display()))
}

/// Seconds since `unix_ms`.
fn age_seconds(unix_ms: u64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    (now.saturating_sub(u128::from(unix_ms))) as f64 / 1000.0
}
