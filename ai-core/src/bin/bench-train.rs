//! Measures training throughput: rows × epochs / time spent in the epoch
//! loop (CSV loading and final metrics excluded), and the final training
//! accuracy. Prints one JSON object per optimizer on stdout.

use std::path::PathBuf;

use ai_core::dataset::load_csv;
use ai_core::optimizer::OptimizerKind;
use ai_core::train::{default_threads, train, TrainOptions};
use clap::Parser;
use serde_json::json;

/// Training throughput benchmark.
#[derive(Debug, Parser)]
struct BenchArgs {
    /// CSV file to train on.
    csv: PathBuf,
    /// Epochs per run.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Training threads [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Optimizers to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sgd,adam")]
    optimizers: Vec<OptimizerKind>,
    /// Runs per optimizer; the fastest run is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn main() -> ai_core::Result<()> {
    let args = BenchArgs::parse();
    let dataset = load_csv(&args.csv)?;
    let threads = args.threads.unwrap_or_else(default_threads);

    for optimizer in &args.optimizers {
        let options = TrainOptions {
            epochs: Some(args.epochs),
            batch_size: args.batch_size,
            optimizer: *optimizer,
            threads,
            validation: Some(0.0),
            ..TrainOptions::default()
        };
        let mut best_seconds = f64::INFINITY;
        let mut accuracy = None;
        for _ in 0..args.repeat.max(1) {
            let outcome = train(&dataset, &options, &mut |_| {})?;
            best_seconds = best_seconds.min(outcome.training_time.as_secs_f64());
            accuracy = outcome.model.header.training.accuracy;
        }
        let samples = (dataset.rows() * args.epochs) as f64;
        println!(
            "{}",
            json!({
                "optimizer": optimizer.name(),
                "rows": dataset.rows(),
                "epochs": args.epochs,
                "batchSize": args.batch_size,
                "threads": threads,
                "trainingSeconds": best_seconds,
                "samplesPerSecond": (samples / best_seconds).round(),
                "accuracy": accuracy,
            })
        );
    }
    Ok(())
}
