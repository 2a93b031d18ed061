//! Latency statistics: nearest-rank percentiles and per-request-type summaries.

use std::time::Duration;

use serde::Serialize;

/// Returns the `p`-th percentile (0 < p <= 100) of `sorted` by the nearest-rank method:
/// the smallest sample such that at least p% of the samples are less than or equal to it.
/// Returns `None` for no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Counts and latencies of one request type. Latencies are in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub requests: usize,
    pub successes: usize,
    pub failures: usize,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Summary {
    /// Summarizes samples of (latency, succeeded); percentiles cover all requests, failed or not.
    pub fn from_samples(samples: &[(Duration, bool)]) -> Summary {
        let mut latencies: Vec<Duration> = samples.iter().map(|(latency, _)| *latency).collect();
        latencies.sort_unstable();
        let millis = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);

        let successes = samples.iter().filter(|(_, ok)| *ok).count();
        let total: Duration = latencies.iter().sum();
        let mean = (!latencies.is_empty()).then(|| total.as_secs_f64() * 1000.0 / latencies.len() as f64);
        Summary {
            requests: samples.len(),
            successes,
            failures: samples.len() - successes,
            mean_ms: mean,
            p50_ms: millis(percentile(&latencies, 50.0)),
            p95_ms: millis(percentile(&latencies, 95.0)),
            p99_ms: millis(percentile(&latencies, 99.0)),
            max_ms: millis(latencies.last().copied()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn percentile_of_nothing_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_of_one_sample_is_that_sample() {
        let one = ms(&[7]);
        for p in [1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&one, p), Some(Duration::from_millis(7)), "p{p}");
        }
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let samples = ms(&(1..=100).collect::<Vec<u64>>());
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 95.0), Some(Duration::from_millis(95)));
        assert_eq!(percentile(&samples, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&samples, 100.0), Some(Duration::from_millis(100)));
    }

    #[test]
    fn percentile_rounds_rank_up() {
        // Ten samples: p95 is rank ceil(9.5) = 10, p50 is rank 5.
        let samples = ms(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]);
        assert_eq!(percentile(&samples, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&samples, 95.0), Some(Duration::from_millis(1000)));
        assert_eq!(percentile(&samples, 90.0), Some(Duration::from_millis(90)));
    }

    #[test]
    fn summary_counts_and_sorts() {
        let samples = vec![
            (Duration::from_millis(30), true),
            (Duration::from_millis(10), false),
            (Duration::from_millis(20), true),
        ];
        let summary = Summary::from_samples(&samples);
        assert_eq!(summary.requests, 3);
        assert_eq!(summary.successes, 2);
        assert_eq!(summary.failures, 1);
        assert_eq!(summary.p50_ms, Some(20.0));
        assert_eq!(summary.max_ms, Some(30.0));
        assert_eq!(summary.mean_ms, Some(20.0));
    }

    #[test]
    fn summary_of_nothing_has_no_latencies() {
        let summary = Summary::from_samples(&[]);
        assert_eq!(summary.requests, 0);
        assert_eq!(summary.p99_ms, None);
        assert_eq!(summary.mean_ms, None);
    }
}
