//! Latency distributions, recorded in microseconds in an HDR histogram.
//!
//! A histogram keeps every sample's bucket at 3 significant digits in constant
//! memory, so the tail (p99.9, max) is exact enough to read, unlike a mean or a
//! sampled reservoir, and the bench can record every order of a long run.

use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;

/// Longest latency the histogram distinguishes (ten minutes); longer ones are
/// recorded as this value rather than dropped.
const HIGHEST_TRACKABLE_MICROS: u64 = 600_000_000;
/// Significant digits kept per sample: 0.1 % error at any magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Every latency of one kind (e.g. PlaceOrder acknowledgements) seen in a run.
#[derive(Debug, Clone)]
pub(crate) struct LatencyRecorder {
    micros: Histogram<u64>,
}

impl LatencyRecorder {
    /// An empty recorder.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let micros = Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_DIGITS)
            .context("could not create a latency histogram")?;
        Ok(Self { micros })
    }

    /// Records one latency.
    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.micros.saturating_record(micros.max(1));
    }

    /// Adds every sample of `other`, e.g. to combine the recorders of many clients.
    pub(crate) fn merge(&mut self, other: &LatencyRecorder) -> anyhow::Result<()> {
        self.micros
            .add(&other.micros)
            .context("could not merge latency histograms")
    }

    /// The percentiles a report shows.
    pub(crate) fn summary(&self) -> LatencySummary {
        let at = |quantile: f64| Duration::from_micros(self.micros.value_at_quantile(quantile));
        LatencySummary {
            count: self.micros.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(self.micros.max()),
        }
    }
}

/// A latency distribution reduced to the numbers worth reading.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LatencySummary {
    /// How many samples there were; the percentiles are zero when there were none.
    pub(crate) count: u64,
    /// The median.
    pub(crate) p50: Duration,
    /// 95th percentile.
    pub(crate) p95: Duration,
    /// 99th percentile.
    pub(crate) p99: Duration,
    /// 99.9th percentile.
    pub(crate) p999: Duration,
    /// The slowest sample.
    pub(crate) max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_every_recorded_sample() {
        let mut recorder = LatencyRecorder::new().expect("histogram");
        for millis in 1..=1_000 {
            recorder.record(Duration::from_millis(millis));
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 1_000);
        let near = |actual: Duration, millis: u64| {
            actual.as_micros().abs_diff(u128::from(millis) * 1_000) <= u128::from(millis)
        };
        assert!(near(summary.p50, 500), "{summary:?}");
        assert!(near(summary.p99, 990), "{summary:?}");
        assert!(near(summary.max, 1_000), "{summary:?}");
    }

    #[test]
    fn merged_recorders_hold_both_sets_of_samples() {
        let mut first = LatencyRecorder::new().expect("histogram");
        let mut second = LatencyRecorder::new().expect("histogram");
        first.record(Duration::from_millis(1));
        second.record(Duration::from_millis(9));
        first.merge(&second).expect("merge");
        assert_eq!(first.summary().count, 2);
    }
}
