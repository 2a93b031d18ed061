//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ai_core::dataset::{parse_csv, Dataset};
use ai_core::generate::{dataset_csv, DatasetKind};
use ai_core::train::{train, TrainOptions, TrainOutcome};

/// Returns the path of a file in tests/data.
pub fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn load_case(name: &str) -> ai_core::Result<Dataset> {
    ai_core::dataset::load_csv(&data_file(name))
}

pub fn generated(kind: DatasetKind) -> Dataset {
    parse_csv(dataset_csv(kind, 42, None).as_bytes()).expect("generated CSV parses")
}

/// Trains with default options on two threads, the way the CLI would on
/// this machine's two cores, but with a fixed date.
pub fn train_default(dataset: &Dataset) -> ai_core::Result<TrainOutcome> {
    let options = TrainOptions {
        threads: 2,
        ..TrainOptions::default()
    };
    train(dataset, &options, &mut |_| {})
}

/// Runs the `ai-core` binary with `args` and no inherited models directory.
pub fn ai_core(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ai-core"))
        .args(args)
        .env_remove("AI_CORE_MODELS_DIR")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("ai-core runs")
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {text}"))
}

pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
