//! The model file format, its validation on load, and atomic saving.
//!
//! Layout, all integers little-endian:
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `AICMDL\r\n` (the CR LF detects line-ending conversion) |
//! | 4 | format version, `u32` |
//! | 4 | header length `n`, `u32`, at most `MAX_HEADER_BYTES` |
//! | n | header: UTF-8 JSON of `ModelHeader` |
//! | 4 × p | the `p` parameters as `f32`, layer by layer: weights row-major (inputs × outputs), then bias |
//! | 4 | CRC-32 of every byte before it |

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

use crate::error::{Error, Result};
use crate::labels::Task;
use crate::model::{Model, ModelHeader};
use crate::network::{Layer, Mlp, OutputActivation};

pub const MAGIC: &[u8; 8] = b"AICMDL\r\n";
pub const FORMAT_VERSION: u32 = 1;
/// File name extension of model files.
pub const EXTENSION: &str = "model";

pub const MAX_HEADER_BYTES: usize = 16 << 20;
pub const MAX_LAYERS: usize = 32;
pub const MAX_LAYER_SIZE: usize = 1 << 16;
/// Upper bound on parameters, checked before any weight is allocated.
pub const MAX_PARAMETERS: usize = 64 << 20;
const FIXED_BYTES: usize = 8 + 4 + 4 + 4;
pub const MAX_FILE_BYTES: u64 = (FIXED_BYTES + MAX_HEADER_BYTES + 4 * MAX_PARAMETERS) as u64;

/// Encodes a model without checking it; `decode` does the checks.
pub fn encode(model: &Model) -> Vec<u8> {
    let header = serde_json::to_vec(&model.header).expect("header serializes");
    let parameters: usize = model.network.layers.iter().map(parameter_count).sum();
    let mut bytes = Vec::with_capacity(FIXED_BYTES + header.len() + 4 * parameters);

    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    for layer in &model.network.layers {
        for values in layer.parameters() {
            for value in values {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
    }
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Decodes and validates a model file's bytes. The error string describes
/// the problem, and `load` adds the path.
pub fn decode(bytes: &[u8]) -> std::result::Result<Model, String> {
    if bytes.len() < FIXED_BYTES {
        return Err(format!(
            "file is truncated: {} bytes, shorter than any model file",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("not an ai-core model file (wrong magic bytes)".to_string());
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {version}; this program reads version {FORMAT_VERSION}"
        ));
    }

    let header_len = read_u32(bytes, 12) as usize;
    if header_len > MAX_HEADER_BYTES {
        return Err(format!(
            "header length {header_len} exceeds the maximum {MAX_HEADER_BYTES}"
        ));
    }
    let header_end = 16 + header_len;
    if bytes.len() < header_end + 4 {
        return Err(format!(
            "file is truncated: header needs {header_end} bytes, file has {}",
            bytes.len()
        ));
    }
    let header: ModelHeader = serde_json::from_slice(&bytes[16..header_end])
        .map_err(|e| format!("invalid header: {e}"))?;
    let parameters = validate_header(&header)?;

    let expected = header_end + 4 * parameters + 4;
    if bytes.len() != expected {
        let problem = if bytes.len() < expected {
            "truncated"
        } else {
            "too long"
        };
        return Err(format!(
            "file is {problem}: expected {expected} bytes for these layer sizes, found {}",
            bytes.len()
        ));
    }
    let stored = read_u32(bytes, expected - 4);
    if crc32fast::hash(&bytes[..expected - 4]) != stored {
        return Err("checksum mismatch: the file is corrupt".to_string());
    }

    let network = read_network(&header, &bytes[header_end..expected - 4])?;
    Ok(Model { header, network })
}

/// Checks the header's sizes and consistency; returns the parameter count.
fn validate_header(header: &ModelHeader) -> std::result::Result<usize, String> {
    let sizes = &header.layer_sizes;
    if sizes.len() < 2 || sizes.len() > MAX_LAYERS + 1 {
        return Err(format!(
            "{} layer sizes; a model has between 2 and {} (inputs, hidden..., outputs)",
            sizes.len(),
            MAX_LAYERS + 1
        ));
    }
    if let Some(&bad) = sizes.iter().find(|&&n| n == 0 || n > MAX_LAYER_SIZE) {
        return Err(format!("layer size {bad} is outside 1..={MAX_LAYER_SIZE}"));
    }
    let parameters: usize = sizes.windows(2).map(|p| p[0] * p[1] + p[1]).sum();
    if parameters > MAX_PARAMETERS {
        return Err(format!(
            "{parameters} parameters exceed the maximum {MAX_PARAMETERS}"
        ));
    }

    let inputs = sizes[0];
    let outputs = *sizes.last().expect("two or more sizes");
    if header.hidden_activation != "relu" {
        return Err(format!(
            "unsupported hidden activation '{}'",
            header.hidden_activation
        ));
    }
    if header.normalization.width() != inputs || !header.normalization.is_valid() {
        return Err(format!(
            "feature normalization does not match {inputs} finite inputs"
        ));
    }
    if header.feature_names.len() != inputs {
        return Err(format!(
            "{} feature names for {inputs} inputs",
            header.feature_names.len()
        ));
    }
    validate_task(header, outputs)?;
    Ok(parameters)
}

/// Checks that task, output activation, output count and labels agree.
fn validate_task(header: &ModelHeader, outputs: usize) -> std::result::Result<(), String> {
    let classes = header.classes.as_ref().map_or(0, Vec::len);
    let consistent = match header.task {
        Task::Binary => {
            header.output_activation == OutputActivation::Sigmoid && outputs == 1 && classes == 2
        }
        Task::Multiclass => {
            header.output_activation == OutputActivation::Softmax
                && outputs >= 3
                && classes == outputs
        }
        Task::Regression => {
            header.output_activation == OutputActivation::Identity
                && outputs == 1
                && header.classes.is_none()
                && header
                    .target_normalization
                    .as_ref()
                    .is_some_and(|t| t.width() == 1 && t.is_valid())
        }
    };
    if consistent {
        Ok(())
    } else {
        Err(format!(
            "task {} does not match output activation {:?}, {outputs} outputs and {classes} classes",
            header.task.name(),
            header.output_activation
        ))
    }
}

/// Reads the weights; every value must be finite.
fn read_network(header: &ModelHeader, mut data: &[u8]) -> std::result::Result<Mlp, String> {
    let mut layers = Vec::with_capacity(header.layer_sizes.len() - 1);
    for (index, pair) in header.layer_sizes.windows(2).enumerate() {
        let (inputs, outputs) = (pair[0], pair[1]);
        let weights = take_f32(&mut data, inputs * outputs, index)?;
        let bias = take_f32(&mut data, outputs, index)?;
        layers.push(Layer {
            weights: Array2::from_shape_vec((inputs, outputs), weights).expect("sized above"),
            bias: Array1::from_vec(bias),
        });
    }
    Ok(Mlp {
        layers,
        output: header.output_activation,
    })
}

fn take_f32(data: &mut &[u8], count: usize, layer: usize) -> std::result::Result<Vec<f32>, String> {
    let (head, rest) = data.split_at(4 * count);
    *data = rest;
    let values: Vec<f32> = head
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "layer {} contains a non-finite weight (NaN or infinity)",
            layer + 1
        ));
    }
    Ok(values)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn parameter_count(layer: &Layer) -> usize {
    layer.weights.len() + layer.bias.len()
}

/// Reads and validates a model file. A missing file is `ModelNotFound`
/// with `model_id`; an invalid one is `InvalidModel`.
pub fn load(path: &Path, model_id: &str) -> Result<Model> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::ModelNotFound {
            id: model_id.to_string(),
            path: path.to_path_buf(),
        },
        _ => Error::io(format!("cannot open {}", path.display()), e),
    })?;
    let invalid = |reason: String| Error::InvalidModel {
        path: path.to_path_buf(),
        reason,
    };

    let length = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
        .len();
    if length > MAX_FILE_BYTES {
        return Err(invalid(format!(
            "{length} bytes exceed the maximum {MAX_FILE_BYTES}"
        )));
    }
    let mut bytes = Vec::with_capacity(length as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    decode(&bytes).map_err(invalid)
}

/// Writes a model so that `path` contains either the old file or the
/// complete new one. The bytes go to a temporary file in the same directory,
/// which is fsynced and then renamed over `path`.
pub fn save_atomic(model: &Model, path: &Path) -> Result<()> {
    let bytes = encode(model);
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(directory)
        .map_err(|e| Error::io(format!("cannot create {}", directory.display()), e))?;

    let temporary = temporary_path(path);
    let written = write_synced(&temporary, &bytes).and_then(|()| {
        std::fs::rename(&temporary, path)
            .map_err(|e| Error::io(format!("cannot rename to {}", path.display()), e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return written;
    }

    // Persist the rename itself. Some file systems cannot fsync a
    // directory; the model is complete either way, so that error is ignored.
    if let Ok(dir) = File::open(directory) {
        let _ = dir.sync_all();
    }
    remove_stale_temporaries(path);
    Ok(())
}

/// Deletes temporary files of `path` left by trainers that were killed,
/// recognized by a process id that no longer runs. Only on systems with
/// `/proc`, where a process's liveness can be read.
fn remove_stale_temporaries(path: &Path) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let prefix = format!(".{name}.tmp-");
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };

    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !proc_root.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Returns a hidden temporary name beside `path`; it starts with `.`, which
/// no valid model id does.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    let mut file = File::create(path).map_err(|e| Error::io(context(), e))?;
    file.write_all(bytes).map_err(|e| Error::io(context(), e))?;
    file.sync_all().map_err(|e| Error::io(context(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrainingInfo;
    use crate::normalize::MinMax;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn sample_model() -> Model {
        let mut rng = StdRng::seed_from_u64(1);
        let network = Mlp::new_he(&[2, 4, 3], OutputActivation::Softmax, &mut rng);
        let header = ModelHeader {
            task: Task::Multiclass,
            layer_sizes: vec![2, 4, 3],
            hidden_activation: "relu".to_string(),
            output_activation: OutputActivation::Softmax,
            feature_names: vec!["a".to_string(), "b".to_string()],
            label_name: "kind".to_string(),
            normalization: MinMax {
                min: vec![-1.5, 0.0],
                max: vec![2.0, 0.0],
            },
            target_normalization: None,
            classes: Some(vec!["x".into(), "y, z".into(), "ñ".into()]),
            training: TrainingInfo {
                date: "2026-01-01T00:00:00Z".to_string(),
                epochs: 3,
                epochs_requested: 5,
                optimizer: "adam".to_string(),
                learning_rate: 0.005,
                batch_size: 32,
                seed: 42,
                threads: 2,
                dataset_rows: 10,
                training_rows: 9,
                validation_rows: 1,
                skipped_rows: 0,
                loss: 0.25,
                accuracy: Some(0.9),
                validation_loss: Some(0.3),
                validation_accuracy: Some(1.0),
                r2: None,
                rmse: None,
            },
        };
        Model { header, network }
    }

    /// Rewrites the header JSON of an encoded model and fixes the checksum,
    /// so that only the header's content is wrong.
    fn with_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let header_len = read_u32(bytes, 12) as usize;
        let mut header: serde_json::Value =
            serde_json::from_slice(&bytes[16..16 + header_len]).unwrap();
        edit(&mut header);
        let new_header = serde_json::to_vec(&header).unwrap();
        let mut out = bytes[..12].to_vec();
        out.extend_from_slice(&(new_header.len() as u32).to_le_bytes());
        out.extend_from_slice(&new_header);
        out.extend_from_slice(&bytes[16 + header_len..bytes.len() - 4]);
        let checksum = crc32fast::hash(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    #[test]
    fn round_trip_preserves_model() {
        let model = sample_model();
        let decoded = decode(&encode(&model)).expect("valid file");
        assert_eq!(decoded, model);
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.model");
        let model = sample_model();
        save_atomic(&model, &path).unwrap();
        assert_eq!(load(&path, "m").unwrap(), model);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn save_removes_dead_trainers_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.model");
        // Process ids stay below 2^22 on Linux, so this one cannot run.
        let stale = dir.path().join(".m.model.tmp-4294967295");
        let live = dir.path().join(format!(
            ".m.model.tmp-{}",
            std::os::unix::process::parent_id()
        ));
        std::fs::write(&stale, b"partial").unwrap();
        std::fs::write(&live, b"in progress").unwrap();

        save_atomic(&sample_model(), &path).unwrap();
        assert!(!stale.exists(), "temporary file of a dead trainer was kept");
        assert!(
            live.exists(),
            "temporary file of a running process was removed"
        );
        assert!(path.exists());
    }

    #[test]
    fn missing_file_is_model_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let error = load(&dir.path().join("none.model"), "none").unwrap_err();
        assert_eq!(error.code(), "MODEL_NOT_FOUND");
    }

    #[test]
    fn truncated_file_is_rejected() {
        let bytes = encode(&sample_model());
        for length in [0, 7, 15, 40, bytes.len() - 1] {
            let error = decode(&bytes[..length]).unwrap_err();
            assert!(error.contains("truncated"), "length {length}: {error}");
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&sample_model());
        bytes.push(0);
        let error = decode(&bytes).unwrap_err();
        assert!(error.contains("too long"), "{error}");
    }

    #[test]
    fn flipped_magic_is_rejected() {
        let mut bytes = encode(&sample_model());
        bytes[0] ^= 0x20;
        let error = decode(&bytes).unwrap_err();
        assert!(error.contains("magic"), "{error}");
    }

    #[test]
    fn unknown_version_is_rejected() {
        let mut bytes = encode(&sample_model());
        bytes[8] = 99;
        let error = decode(&bytes).unwrap_err();
        assert!(error.contains("version 99"), "{error}");
    }

    #[test]
    fn flipped_weight_bit_fails_checksum() {
        let mut bytes = encode(&sample_model());
        let at = bytes.len() - 10;
        bytes[at] ^= 0x01;
        let error = decode(&bytes).unwrap_err();
        assert!(error.contains("checksum"), "{error}");
    }

    #[test]
    fn absurd_layer_sizes_are_rejected_before_allocation() {
        let bytes = encode(&sample_model());
        let huge = with_header(&bytes, |h| {
            h["layer_sizes"] = serde_json::json!([2, 4294967295u64, 3])
        });
        let error = decode(&huge).unwrap_err();
        assert!(error.contains("layer size 4294967295"), "{error}");

        let many = with_header(&bytes, |h| {
            h["layer_sizes"] = serde_json::json!([65536, 65536, 65536])
        });
        let error = decode(&many).unwrap_err();
        assert!(error.contains("exceed the maximum"), "{error}");
    }

    #[test]
    fn huge_header_length_is_rejected() {
        let mut bytes = encode(&sample_model());
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let error = decode(&bytes).unwrap_err();
        assert!(error.contains("header length"), "{error}");
    }

    #[test]
    fn nan_weight_is_rejected() {
        let mut model = sample_model();
        model.network.layers[1].weights[[2, 1]] = f32::NAN;
        let error = decode(&encode(&model)).unwrap_err();
        assert!(error.contains("non-finite weight"), "{error}");
    }

    #[test]
    fn inconsistent_header_is_rejected() {
        let bytes = encode(&sample_model());
        let wrong_classes = with_header(&bytes, |h| h["classes"] = serde_json::json!(["a", "b"]));
        let error = decode(&wrong_classes).unwrap_err();
        assert!(error.contains("does not match"), "{error}");

        let wrong_width = with_header(&bytes, |h| {
            h["normalization"]["min"] = serde_json::json!([0.0])
        });
        let error = decode(&wrong_width).unwrap_err();
        assert!(error.contains("normalization"), "{error}");
    }

    #[test]
    fn oversized_file_is_rejected_by_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.model");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let error = load(&path, "big").unwrap_err();
        assert_eq!(error.code(), "INVALID_MODEL");
        assert!(error.to_string().contains("exceed the maximum"), "{error}");
    }
}
