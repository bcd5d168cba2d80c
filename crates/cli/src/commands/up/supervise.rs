//! Watching the running stack until someone asks it to stop.
//!
//! A process that exits on its own is reported — which one, how it exited and the
//! end of its log — and the rest keep running. That is a choice: Microcosm exists to
//! be broken on purpose, and killing the billing service to watch orders wait in
//! CHARGING and complete once it is back is exactly the experiment the README
//! suggests. Tearing the whole stack down would end the experiment; keeping it up
//! lets the saga show what it does. Ctrl-C then stops what is left as usual, and `up`
//! still exits 0: the crash was reported when it happened.

use std::collections::BTreeSet;
use std::process::ExitStatus;
use std::time::Duration;

use microcosm_testkit::{ServiceKind, Stack};

use super::stop_signals::StopSignals;

/// How often the processes are checked: a crash is reported within this time.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// How many log lines a crash report quotes: the last words of a process, not its
/// whole start-up (the full log is one path away).
const REPORTED_LOG_LINES: usize = 15;

/// One process of the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Service(ServiceKind),
    Postgres,
    Nats,
}

impl Part {
    const ALL: [Part; 5] = [
        Part::Service(ServiceKind::Order),
        Part::Service(ServiceKind::Inventory),
        Part::Service(ServiceKind::Billing),
        Part::Postgres,
        Part::Nats,
    ];

    fn name(self) -> &'static str {
        match self {
            Part::Service(kind) => kind.binary_name(),
            Part::Postgres => "PostgreSQL",
            Part::Nats => "nats-server",
        }
    }

    /// How the process exited, if it has; `Err` if it cannot be checked.
    fn exit_status(self, stack: &mut Stack) -> anyhow::Result<Option<ExitStatus>> {
        match self {
            Part::Service(kind) => stack.service_mut(kind).try_exit_status(),
            Part::Postgres => stack.postgres_mut(ServiceKind::Order).try_exit_status(),
            Part::Nats => stack.nats.try_exit_status(),
        }
    }

    /// Where its log is and how it ends.
    fn log(self, stack: &Stack) -> (String, String) {
        match self {
            Part::Service(kind) => {
                let service = stack.service(kind);
                let tail = service.log_tail();
                let lines: Vec<&str> = tail.lines().collect();
                let last = lines[lines.len().saturating_sub(REPORTED_LOG_LINES)..].join("\n");
                (service.log_path().display().to_string(), last)
            }
            Part::Postgres => (
                stack
                    .postgres(ServiceKind::Order)
                    .log_path()
                    .display()
                    .to_string(),
                stack
                    .postgres(ServiceKind::Order)
                    .log_tail(REPORTED_LOG_LINES),
            ),
            Part::Nats => (
                stack.nats.log_path().display().to_string(),
                stack.nats.log_tail(REPORTED_LOG_LINES),
            ),
        }
    }
}

/// Runs until Ctrl-C or SIGTERM, reporting each process that exits meanwhile (once).
/// Returns which signal asked to stop.
pub(crate) async fn watch_until_stopped(
    stack: &mut Stack,
    signals: &mut StopSignals,
) -> &'static str {
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let mut reported = BTreeSet::new();
    loop {
        tokio::select! {
            signal = signals.next() => return signal,
            _ = watch.tick() => report_new_exits(stack, &mut reported),
        }
    }
}

fn report_new_exits(stack: &mut Stack, reported: &mut BTreeSet<Part>) {
    for part in Part::ALL {
        if reported.contains(&part) {
            continue;
        }
        let how = match part.exit_status(stack) {
            Ok(None) => continue,
            Ok(Some(status)) => format!("exited on its own ({status})"),
            Err(error) => format!("cannot be checked on ({error:#})"),
        };
        reported.insert(part);
        let (log_path, log_tail) = part.log(stack);
        eprintln!();
        eprintln!(
            "!! {} {how}. Everything else keeps running; Ctrl-C stops it all.",
            part.name()
        );
        eprintln!("   The end of {log_path}:");
        for line in log_tail.lines() {
            eprintln!("   {line}");
        }
    }
}
