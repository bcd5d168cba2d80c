//! A progress bar over a load window, so a 20-second run is not 20 seconds of
//! silence, and a stall (nothing completing) is visible while it happens.
//!
//! indicatif draws on stderr only when it is a terminal, so scripts and tests
//! that capture the output see just the final report.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the figures on the bar are refreshed.
const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// The live figures of one load: what it has done so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoadFigures {
    /// Orders placed (PlaceOrder answered, or the monolith's transaction committed).
    pub(crate) placed: u64,
    /// Orders that reached their end.
    pub(crate) completed: u64,
    /// Orders placed and not ended yet.
    pub(crate) in_flight: u64,
    /// Calls that failed.
    pub(crate) failed: u64,
}

/// A bar refreshed in the background from a closure that reads the load's
/// counters, until [`stop`](Self::stop) is called.
#[derive(Debug)]
pub(crate) struct ProgressTicker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ProgressTicker {
    /// Shows a bar titled `title` for a window of `duration` that opened at
    /// `start`, refreshed with what `figures` returns.
    pub(crate) fn start<F>(title: &str, start: Instant, duration: Duration, figures: F) -> Self
    where
        F: Fn() -> LoadFigures + Send + 'static,
    {
        let mut progress = LoadProgress::start(title, duration);
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(REFRESH_INTERVAL);
            loop {
                tokio::select! {
                    _ = ticker.tick() => progress.show(start.elapsed(), figures()),
                    _ = &mut stopped => break,
                }
            }
            progress.finish();
        });
        Self { stop, task }
    }

    /// Clears the bar.
    pub(crate) async fn stop(self) {
        // The task ends on this signal, or has ended already: both are fine.
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The bar of one load, counting seconds of its window.
#[derive(Debug)]
struct LoadProgress {
    bar: ProgressBar,
    last: Option<(Instant, u64)>,
}

impl LoadProgress {
    /// A bar titled `title` over a window of `duration`.
    fn start(title: &str, duration: Duration) -> Self {
        let bar = ProgressBar::new(duration.as_secs().max(1));
        let style = ProgressStyle::with_template("{prefix:>9} [{bar:24}] {pos:>3}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(title.to_owned());
        Self { bar, last: None }
    }

    /// Shows `figures` at `elapsed` into the window, with the completion rate
    /// since the previous refresh.
    fn show(&mut self, elapsed: Duration, figures: LoadFigures) {
        let now = Instant::now();
        let rate = match self.last {
            Some((then, completed)) if now > then => {
                figures.completed.saturating_sub(completed) as f64
                    / now.duration_since(then).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((now, figures.completed));
        self.bar
            .set_position(elapsed.as_secs().min(self.bar.length().unwrap_or(0)));
        self.bar.set_message(format!(
            "placed {} | completed {} ({rate:.0}/s) | in flight {} | failed {}",
            figures.placed, figures.completed, figures.in_flight, figures.failed
        ));
    }

    /// Removes the bar; the report follows.
    fn finish(self) {
        self.bar.finish_and_clear();
    }
}
