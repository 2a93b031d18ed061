//! Error type of the library, with the wire code and process exit code of
//! each condition.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Failures that a caller of `ai-core` can see.
///
/// Each variant maps to one wire code (`code`) that the cluster forwards to
/// its clients unchanged, and to one process exit code (`exit_code`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CSV file cannot be used for training.
    #[error("{0}")]
    InvalidCsv(String),

    /// A request value (input vector, option, JSON request) is malformed.
    #[error("{0}")]
    InvalidPayload(String),

    /// A model id is outside the allowed character set or length.
    #[error("{0}")]
    InvalidName(String),

    /// No model file exists for the id.
    #[error("model {id} not found (no file {})", path.display())]
    ModelNotFound { id: String, path: PathBuf },

    /// An input vector's length differs from the model's input count.
    #[error("input has {got} values but model {model} expects {expected}")]
    DimensionMismatch {
        model: String,
        got: usize,
        expected: usize,
    },

    /// A model file exists but is truncated, corrupt or not a model file.
    #[error("invalid model file {}: {reason}", path.display())]
    InvalidModel { path: PathBuf, reason: String },

    /// Training produced no usable model (for example, the loss diverged).
    #[error("{0}")]
    TrainingFailed(String),

    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done, for example
    /// "cannot read data.csv".
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Returns the stable machine-readable code that the cluster sends to
    /// clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidCsv(_) => "INVALID_CSV",
            Error::InvalidPayload(_) => "INVALID_PAYLOAD",
            Error::InvalidName(_) => "INVALID_NAME",
            Error::ModelNotFound { .. } => "MODEL_NOT_FOUND",
            Error::DimensionMismatch { .. } => "DIMENSION_MISMATCH",
            Error::InvalidModel { .. } => "INVALID_MODEL",
            Error::TrainingFailed(_) => "TRAINING_FAILED",
            Error::Io { .. } => "IO_ERROR",
        }
    }

    /// Returns the process exit code: 2 invalid input, 3 model not found,
    /// 4 dimension mismatch, 1 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidCsv(_) | Error::InvalidPayload(_) | Error::InvalidName(_) => 2,
            Error::ModelNotFound { .. } => 3,
            Error::DimensionMismatch { .. } => 4,
            Error::InvalidModel { .. } | Error::TrainingFailed(_) | Error::Io { .. } => 1,
        }
    }
}
