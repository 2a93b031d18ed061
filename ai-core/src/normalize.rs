//! Min-max normalization of feature columns and regression targets.

use serde::{Deserialize, Serialize};

/// Per-column minimum and maximum fitted on training rows.
///
/// A value maps to `2 (x - min) / (max - min) - 1`, which is -1..1 on the
/// training data; centered inputs train faster than 0..1. A constant column
/// (`max == min`) maps every value to 0, so it never divides by zero.
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
            (value * 0.5 - low) / range * 2.0 - 1.0
        } else {
            0.0
        }
    }

    /// Maps a scaled value of `column` back to the original units.
    pub fn unscale(&self, column: usize, scaled: f64) -> f64 {
        let low = self.min[column] * 0.5;
        let range = self.max[column] * 0.5 - low;
        ((scaled + 1.0) * 0.5 * range + low) * 2.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_columns_to_minus_one_one() {
        let data = [0.0, 10.0, 5.0, 20.0, 10.0, 30.0];
        let scaler = MinMax::fit(&data, 2, 0..3);
        assert_eq!(scaler.min, vec![0.0, 10.0]);
        assert_eq!(scaler.max, vec![10.0, 30.0]);
        assert_eq!(scaler.scale(0, 0.0), -1.0);
        assert_eq!(scaler.scale(0, 5.0), 0.0);
        assert_eq!(scaler.scale(1, 30.0), 1.0);
    }

    #[test]
    fn all_negative_column_scales_from_its_minimum() {
        let data = [-90.0, -50.0, -10.0];
        let scaler = MinMax::fit(&data, 1, 0..3);
        assert_eq!(scaler.min, vec![-90.0]);
        assert_eq!(scaler.max, vec![-10.0]);
        assert_eq!(scaler.scale(0, -90.0), -1.0);
        assert_eq!(scaler.scale(0, -50.0), 0.0);
        assert_eq!(scaler.scale(0, -10.0), 1.0);
    }

    #[test]
    fn constant_column_maps_to_zero() {
        let data = [5.0, 5.0, 5.0];
        let scaler = MinMax::fit(&data, 1, 0..3);
        assert_eq!(scaler.scale(0, 5.0), 0.0);
        assert_eq!(scaler.scale(0, 7.0), 0.0);
        assert!(scaler.is_valid());
    }

    #[test]
    fn extreme_values_stay_finite() {
        let data = [-f64::MAX, f64::MAX];
        let scaler = MinMax::fit(&data, 1, 0..2);
        assert_eq!(scaler.scale(0, -f64::MAX), -1.0);
        assert_eq!(scaler.scale(0, f64::MAX), 1.0);
        assert_eq!(scaler.scale(0, 0.0), 0.0);
    }

    #[test]
    fn unscale_inverts_scale() {
        let data = [-3.0, 17.0];
        let scaler = MinMax::fit(&data, 1, 0..2);
        for value in [-3.0, 0.0, 4.25, 17.0] {
            let back = scaler.unscale(0, scaler.scale(0, value));
            assert!((back - value).abs() < 1e-12, "{value} came back as {back}");
        }
    }

    #[test]
    fn fit_uses_only_picked_rows() {
        let data = [1.0, 100.0, 3.0];
        let scaler = MinMax::fit(&data, 1, [0, 2]);
        assert_eq!(scaler.max, vec![3.0]);
    }
}
