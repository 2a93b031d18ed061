//! Seeded synthetic datasets for the stress test, generated in memory.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Number of features of [`circles`] rows.
pub const CIRCLES_FEATURES: usize = 2;

/// Builds a `x,y,class` CSV of two noisy rings around the origin: class 0 at radius 1 and
/// class 1 at radius 3, with Gaussian noise of standard deviation 0.2 on each coordinate.
/// Rows alternate between the classes; the same seed gives the same bytes.
pub fn circles(rows: usize, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.2).expect("0.2 is a valid standard deviation");

    let mut csv = String::from("x,y,class\n");
    for row in 0..rows {
        let class = row % 2;
        let radius = if class == 0 { 1.0 } else { 3.0 };
        let angle = rng.gen_range(0.0..std::f64::consts::TAU);
        let x = radius * angle.cos() + noise.sample(&mut rng);
        let y = radius * angle.sin() + noise.sample(&mut rng);
        csv.push_str(&format!("{x:.6},{y:.6},{class}\n"));
    }
    csv
}

/// Returns a random point in the square around both rings, as a prediction input.
pub fn circles_point(rng: &mut impl Rng) -> Vec<f64> {
    (0..CIRCLES_FEATURES).map(|_| rng.gen_range(-3.5..3.5)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circles_have_header_and_rows() {
        let csv = circles(10, 42);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "x,y,class");
        assert_eq!(lines.len(), 11);
        for line in &lines[1..] {
            assert_eq!(line.split(',').count(), CIRCLES_FEATURES + 1, "row {line}");
        }
    }

    #[test]
    fn circles_radius_matches_class() {
        for line in circles(200, 7).lines().skip(1) {
            let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
            let radius = (cells[0] * cells[0] + cells[1] * cells[1]).sqrt();
            let expected = if cells[2] == 0.0 { 1.0 } else { 3.0 };
            assert!((radius - expected).abs() < 1.2, "row {line} is far from radius {expected}");
        }
    }

    #[test]
    fn circles_repeat_for_same_seed() {
        assert_eq!(circles(50, 3), circles(50, 3));
        assert_ne!(circles(50, 3), circles(50, 4));
    }
}
