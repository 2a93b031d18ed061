//! CSV-to-model training and prediction for the cluster's `ai-core` process.
//!
//! Layout:
//! - `dataset`: CSV parsing, separator and header detection, skipped rows.
//! - `labels`: task detection and label encoding.
//! - `normalize`: min-max scaling of features and regression targets.
//! - `network`: the MLP and its batched forward and backward passes.
//! - `optimizer`: SGD and Adam updates.
//! - `train`: the data-parallel training loop and early stopping.
//! - `model`: a trained model and its predictions.
//! - `model_file`: the versioned binary file format, validation, atomic save.
//! - `store`: model ids, paths in the models directory, input vectors.
//! - `generate`: synthetic datasets.
//! - `serve`: the JSON-lines prediction worker.
//! - `cli`: the command-line interface.
//! - `error`: error conditions, wire codes and exit codes.

pub mod cli;
pub mod dataset;
pub mod error;
pub mod generate;
pub mod labels;
pub mod model;
pub mod model_file;
pub mod network;
pub mod normalize;
pub mod optimizer;
pub mod serve;
pub mod store;
pub mod timestamp;
pub mod train;

pub use error::{Error, Result};
