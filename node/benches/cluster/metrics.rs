//! Parsing of the node's Prometheus text: one histogram at a time, and the difference of
//! two scrapes, which limits a benchmark phase to its own observations.

/// One histogram from a `/metrics` scrape: cumulative bucket counts, sum and count.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// (upper bound in seconds, cumulative count), in the order of the text.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// Parses histogram `name` from `text`, keeping only series whose labels contain every
    /// string in `labels` (for example `type="UPLOAD_DATASET"`).
    pub fn parse(text: &str, name: &str, labels: &[&str]) -> Histogram {
        let mut histogram = Histogram::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let Some(rest) = series.strip_prefix(name) else { continue };
            if !labels.iter().all(|label| series.contains(label)) {
                continue;
            }
            if rest.starts_with("_bucket{") {
                let bound = series
                    .split("le=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(|s| if s == "+Inf" { f64::INFINITY } else { s.parse().unwrap_or(f64::NAN) });
                if let Some(bound) = bound {
                    histogram.buckets.push((bound, value));
                }
            } else if rest.starts_with("_sum") {
                histogram.sum = value;
            } else if rest.starts_with("_count") {
                histogram.count = value;
            }
        }
        histogram
    }

    /// Returns the observations in `self` that are not in `earlier`, a scrape of the same series.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(bound, count)| {
                let before = earlier.buckets.iter().find(|(b, _)| *b == bound).map_or(0.0, |(_, c)| *c);
                (bound, count - before)
            })
            .collect();
        Histogram { buckets, sum: self.sum - earlier.sum, count: self.count - earlier.count }
    }

    /// Returns the mean observation in milliseconds, or `None` without observations.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count * 1000.0)
    }

    /// Returns the upper bound, in milliseconds, of the bucket that contains quantile `q`. Histogram
    /// buckets are coarse, so this is a bound, not an exact quantile.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets.iter().find(|(_, cumulative)| *cumulative >= rank).map(|(bound, _)| bound * 1000.0)
    }
}

/// Returns the value of a counter or gauge series named `name` whose labels contain `labels`.
pub fn scalar(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let matches = (rest.is_empty() || rest.starts_with('{')) && labels.iter().all(|label| series.contains(label));
        if matches {
            value.parse().ok()
        } else {
            None
        }
    })
}
