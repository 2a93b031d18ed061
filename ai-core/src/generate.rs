//! Synthetic datasets for demos and tests, written as CSV files.

use std::f64::consts::PI;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};

/// The datasets `generate` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetKind {
    /// xor.csv: the four rows of exclusive or; header `x1,x2,output`.
    Xor,
    /// linear.csv: 100 rows of y = 2x + 1 plus Gaussian noise (sigma 0.5).
    Linear,
    /// circles.csv: 500 points on two circles, class 0 at radius 1 and class 1
    /// at radius 3, Gaussian noise sigma 0.2.
    Circles,
    /// large_dataset.csv: 10,000 rows of 20 standard normal features; the
    /// target is 1 when the features sum above 0.
    Large,
    /// spiral.csv: 300 points on three interleaved spiral arms, classes 0-2.
    Spiral,
    /// iris.csv: 150 flowers with 4 measurements and text species labels,
    /// drawn around per-species means like Fisher's iris data.
    Iris,
}

impl DatasetKind {
    pub fn file_name(self) -> &'static str {
        match self {
            DatasetKind::Xor => "xor.csv",
            DatasetKind::Linear => "linear.csv",
            DatasetKind::Circles => "circles.csv",
            DatasetKind::Large => "large_dataset.csv",
            DatasetKind::Spiral => "spiral.csv",
            DatasetKind::Iris => "iris.csv",
        }
    }

    /// Returns the default number of rows.
    pub fn default_rows(self) -> usize {
        match self {
            DatasetKind::Xor => 4,
            DatasetKind::Linear => 100,
            DatasetKind::Circles => 500,
            DatasetKind::Large => 10_000,
            DatasetKind::Spiral => 300,
            DatasetKind::Iris => 150,
        }
    }
}

/// Returns the CSV text of a dataset. `rows` overrides the default row count
/// (except for xor, which always has its four rows).
pub fn dataset_csv(kind: DatasetKind, seed: u64, rows: Option<usize>) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let rows = rows.unwrap_or(kind.default_rows());
    match kind {
        DatasetKind::Xor => "x1,x2,output\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n".to_string(),
        DatasetKind::Linear => linear(&mut rng, rows),
        DatasetKind::Circles => circles(&mut rng, rows),
        DatasetKind::Large => large(&mut rng, rows),
        DatasetKind::Spiral => spiral(&mut rng, rows),
        DatasetKind::Iris => iris(&mut rng, rows),
    }
}

/// Writes a dataset into `out_dir` and returns the file's path.
pub fn write_dataset(
    kind: DatasetKind,
    out_dir: &Path,
    seed: u64,
    rows: Option<usize>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)
        .map_err(|e| Error::io(format!("cannot create {}", out_dir.display()), e))?;
    let path = out_dir.join(kind.file_name());
    std::fs::write(&path, dataset_csv(kind, seed, rows))
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(path)
}

fn gaussian(sigma: f64) -> Normal<f64> {
    Normal::new(0.0, sigma).expect("valid sigma")
}

fn linear(rng: &mut StdRng, rows: usize) -> String {
    let noise = gaussian(0.5);
    let mut csv = String::from("x,y\n");
    for _ in 0..rows {
        let x: f64 = rng.gen_range(0.0..10.0);
        let y = 2.0 * x + 1.0 + noise.sample(rng);
        writeln!(csv, "{x:.4},{y:.4}").expect("write to String");
    }
    csv
}

fn circles(rng: &mut StdRng, rows: usize) -> String {
    let noise = gaussian(0.2);
    let mut csv = String::from("x,y,class\n");
    for i in 0..rows {
        let class = i % 2;
        let radius = if class == 0 { 1.0 } else { 3.0 };
        let angle: f64 = rng.gen_range(0.0..2.0 * PI);
        let x = radius * angle.cos() + noise.sample(rng);
        let y = radius * angle.sin() + noise.sample(rng);
        writeln!(csv, "{x:.4},{y:.4},{class}").expect("write to String");
    }
    csv
}

fn large(rng: &mut StdRng, rows: usize) -> String {
    let normal = gaussian(1.0);
    let mut csv: String = (0..20).map(|i| format!("f{i},")).collect();
    csv.push_str("target\n");
    let mut features = [0.0f64; 20];
    for _ in 0..rows {
        features.iter_mut().for_each(|f| *f = normal.sample(rng));
        for f in &features {
            write!(csv, "{f:.4},").expect("write to String");
        }
        // The label uses the rounded values that the file stores.
        let sum: f64 = features.iter().map(|f| (f * 1e4).round() / 1e4).sum();
        writeln!(csv, "{}", u8::from(sum > 0.0)).expect("write to String");
    }
    csv
}

fn spiral(rng: &mut StdRng, rows: usize) -> String {
    let noise = gaussian(0.2);
    let mut csv = String::from("x,y,class\n");
    for i in 0..rows {
        let class = i % 3;
        let t: f64 = rng.gen_range(0.0..1.0);
        let angle = 4.0 * t + class as f64 * 2.0 * PI / 3.0 + noise.sample(rng);
        let x = t * angle.cos();
        let y = t * angle.sin();
        writeln!(csv, "{x:.4},{y:.4},{class}").expect("write to String");
    }
    csv
}

/// Per-species means and standard deviations of sepal length, sepal width,
/// petal length and petal width in cm, rounded from Fisher's iris data.
const IRIS_SPECIES: [(&str, [f64; 4], [f64; 4]); 3] = [
    ("setosa", [5.0, 3.4, 1.5, 0.25], [0.35, 0.38, 0.17, 0.11]),
    ("versicolor", [5.9, 2.8, 4.3, 1.3], [0.52, 0.31, 0.47, 0.20]),
    ("virginica", [6.6, 3.0, 5.6, 2.0], [0.64, 0.32, 0.55, 0.27]),
];

fn iris(rng: &mut StdRng, rows: usize) -> String {
    let mut csv = String::from("sepal_length,sepal_width,petal_length,petal_width,species\n");
    for i in 0..rows {
        let (name, means, sigmas) = IRIS_SPECIES[i % 3];
        for (mean, sigma) in means.iter().zip(sigmas) {
            let value = (mean + gaussian(sigma).sample(rng)).max(0.1);
            write!(csv, "{value:.1},").expect("write to String");
        }
        writeln!(csv, "{name}").expect("write to String");
    }
    csv
}
