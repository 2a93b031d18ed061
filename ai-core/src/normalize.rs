//! Min-max normalization of feature columns and regression targets.

use serde::{Deserialize, Serialize};

/// Per-column minimum and maximum fitted on training rows.
///
/// A value maps to `(x - min) / (max - min)`, which is 0..1 on the training
/// data. A constant column (`max == min`) maps every value to 0, so it never
/// divides by zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMax {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl MinMax {
    /// Fits the column ranges of the rows picked by `rows` from a row-major
    /// matrix with `width` columns.
    pub fn fit(data: &[f64], width: usize, rows: impl IntoIterator<Item = usize>) -> MinMax {
        let mut min = vec![f64::INFINITY; width];
        let mut max = vec![f64::NEG_INFINITY; width];
        for row in rows {
            let values = &data[row * width..(row + 1) * width];
            for (column, &value) in values.iter().enumerate() {
                min[column] = min[column].min(value);
                max[column] = max[column].max(value);
            }
        }
        MinMax { min, max }
    }

    /// Returns the number of columns.
    pub fn width(&self) -> usize {
        self.min.len()
    }

    /// Scales one value of `column`.
    pub fn scale(&self, column: usize, value: f64) -> f64 {
        // Halving both sides keeps `max - min` finite for values near f64::MAX.
        let low = self.min[column] * 0.5;
        let range = self.max[column] * 0.5 - low;
        if range > 0.0 {
            (value * 0.5 - low) / range
        } else {
            0.0
        }
    }

    /// Maps a scaled value of `column` back to the original units.
    pub fn unscale(&self, column: usize, scaled: f64) -> f64 {
        let low = self.min[column] * 0.5;
        let range = self.max[column] * 0.5 - low;
        (scaled * range + low) * 2.0
    }

    /// Scales one row into `out` as f32.
    pub fn scale_row(&self, row: &[f64], out: &mut [f32]) {
        for (column, (value, slot)) in row.iter().zip(out.iter_mut()).enumerate() {
            *slot = self.scale(column, *value) as f32;
        }
    }

    /// Returns true when every bound is finite and `min <= max`.
    pub fn is_valid(&self) -> bool {
        self.min.len() == self.max.len()
            && self
                .min
                .iter()
                .zip(&self.max)
                .all(|(lo, hi)| lo.is_finite() && hi.is_finite() && lo <= hi)
    }
}
