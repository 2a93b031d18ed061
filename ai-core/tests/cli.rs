//! The `ai-core` binary: commands, JSON output, error codes and exit codes.

mod common;

use std::path::Path;

use common::{ai_core, data_file, stderr_text, stdout_json};

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Generates xor.csv in `dir` and trains model `id` from it.
fn train_xor(dir: &Path, id: &str) -> serde_json::Value {
    let generated = ai_core(&["generate", "xor", "--out", path_str(dir)]);
    assert!(generated.status.success(), "{}", stderr_text(&generated));
    let csv = dir.join("xor.csv");
    let models = dir.join("models");
    let output = ai_core(&[
        "train",
        path_str(&csv),
        id,
        "--models-dir",
        path_str(&models),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    stdout_json(&output)
}

#[test]
fn generate_prints_path_and_writes_rows() {
    let dir = tempfile::tempdir().unwrap();
    let expected = [
        ("xor", "xor.csv", "x1,x2,output", 4),
        ("linear", "linear.csv", "x,y", 100),
        ("circles", "circles.csv", "x,y,class", 500),
        ("large", "large_dataset.csv", "f0,f1,f2", 10_000),
        ("spiral", "spiral.csv", "x,y,class", 300),
        ("iris", "iris.csv", "sepal_length", 150),
    ];
    for (kind, file, header_start, rows) in expected {
        let output = ai_core(&["generate", kind, "--out", path_str(dir.path())]);
        assert!(output.status.success(), "{kind}: {}", stderr_text(&output));
        let printed = String::from_utf8(output.stdout).unwrap();
        assert_eq!(Path::new(printed.trim()), dir.path().join(file));
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let mut lines = text.lines();
        assert!(
            lines.next().unwrap().starts_with(header_start),
            "{kind} header"
        );
        assert_eq!(lines.count(), rows, "{kind} rows");
    }
}

#[test]
fn generate_is_reproducible_with_seed() {
    let dir = tempfile::tempdir().unwrap();
    let read = |seed: &str| {
        ai_core(&[
            "generate",
            "circles",
            "--out",
            path_str(dir.path()),
            "--seed",
            seed,
        ]);
        std::fs::read(dir.path().join("circles.csv")).unwrap()
    };
    assert_eq!(read("42"), read("42"));
    assert_ne!(read("42"), read("43"));
}

#[test]
fn train_json_reports_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = train_xor(dir.path(), "x1");
    assert_eq!(summary["success"], true);
    assert_eq!(summary["modelId"], "x1");
    assert_eq!(summary["task"], "binary");
    assert_eq!(summary["features"], 2);
    assert_eq!(summary["outputs"], 1);
    assert_eq!(summary["classes"], serde_json::json!(["0", "1"]));
    assert_eq!(summary["samples"], 4);
    assert_eq!(summary["skippedRows"], 0);
    assert_eq!(summary["accuracy"], 1.0);
    assert!(summary["validationAccuracy"].is_null());
    assert!(summary["durationMs"].is_u64());
    assert!(Path::new(summary["file"].as_str().unwrap()).is_file());
}

#[test]
fn train_reports_skipped_lines_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let csv = data_file("nan_inf_empty_cells.csv");
    let models = dir.path().join("m");
    let output = ai_core(&[
        "train",
        path_str(&csv),
        "n1",
        "--models-dir",
        path_str(&models),
        "--json",
        "--epochs",
        "3",
    ]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let summary = stdout_json(&output);
    assert_eq!(summary["skippedRows"], 4);
    assert_eq!(summary["skippedLines"], serde_json::json!([42, 43, 44, 46]));
    assert_eq!(summary["epochs"], 3);
    let stderr = stderr_text(&output);
    let epoch_lines = stderr.lines().filter(|l| l.starts_with("epoch ")).count();
    assert_eq!(epoch_lines, 3, "{stderr}");
    assert!(stderr.contains("line 42"), "{stderr}");
}

#[test]
fn predict_prints_output_array() {
    let dir = tempfile::tempdir().unwrap();
    train_xor(dir.path(), "x1");
    let models = dir.path().join("models");
    let output = ai_core(&["predict", "x1", "0,1", "--models-dir", path_str(&models)]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let values: Vec<f64> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(values.len(), 1);
    assert!(values[0] > 0.5, "xor(0, 1) predicted {}", values[0]);
}

#[test]
fn predict_json_gives_label() {
    let dir = tempfile::tempdir().unwrap();
    train_xor(dir.path(), "x1");
    let models = dir.path().join("models");
    let output = ai_core(&[
        "predict",
        "x1",
        "[1, 1]",
        "--models-dir",
        path_str(&models),
        "--json",
    ]);
    let result = stdout_json(&output);
    assert_eq!(result["success"], true);
    assert_eq!(result["label"], "0");
    assert!(result["value"].is_null());
    assert_eq!(result["prediction"].as_array().unwrap().len(), 1);
}

#[test]
fn predict_regression_in_label_units() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let csv = data_file("regression_linear.csv");
    let trained = ai_core(&[
        "train",
        path_str(&csv),
        "r1",
        "--models-dir",
        path_str(&models),
    ]);
    assert!(trained.status.success(), "{}", stderr_text(&trained));
    let output = ai_core(&[
        "predict",
        "r1",
        "3",
        "--models-dir",
        path_str(&models),
        "--json",
    ]);
    let result = stdout_json(&output);
    let value = result["value"].as_f64().unwrap();
    assert!((value - 7.0).abs() < 0.3, "predicted {value}");
    assert_eq!(result["prediction"][0].as_f64().unwrap(), value);
    assert!(result["label"].is_null());
}

#[test]
fn models_dir_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    train_xor(dir.path(), "x1");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ai-core"))
        .args(["predict", "x1", "1,0"])
        .env("AI_CORE_MODELS_DIR", dir.path().join("models"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
}

/// Runs a failing command and checks its exit code, stderr line and JSON.
fn assert_failure(args: &[&str], exit_code: i32, code: &str) -> String {
    let output = ai_core(args);
    assert_eq!(
        output.status.code(),
        Some(exit_code),
        "{args:?}: {}",
        stderr_text(&output)
    );
    let stderr = stderr_text(&output);
    let error_line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    let result = stdout_json(&output);
    assert_eq!(result["success"], false);
    assert_eq!(result["code"], code, "{args:?}");
    let message = result["error"].as_str().unwrap().to_string();
    assert_eq!(error_line, format!("error: {message}"));
    message
}

#[test]
fn invalid_model_ids_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let csv = data_file("crlf_line_endings.csv");
    let long = "a".repeat(300);
    for id in ["../../etc/passwd", "a/b", "", long.as_str(), ".hidden"] {
        assert_failure(
            &[
                "train",
                path_str(&csv),
                id,
                "--models-dir",
                path_str(&models),
                "--json",
            ],
            2,
            "INVALID_NAME",
        );
    }
    assert!(
        !models.exists(),
        "a rejected name created the models directory"
    );
}

#[test]
fn missing_model_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let message = assert_failure(
        &[
            "predict",
            "nope",
            "1,2",
            "--models-dir",
            path_str(dir.path()),
            "--json",
        ],
        3,
        "MODEL_NOT_FOUND",
    );
    assert!(message.contains("nope"), "{message}");
}

#[test]
fn dimension_mismatch_exits_4_naming_sizes() {
    let dir = tempfile::tempdir().unwrap();
    train_xor(dir.path(), "m1");
    let models = dir.path().join("models");
    let message = assert_failure(
        &[
            "predict",
            "m1",
            "1,2,3",
            "--models-dir",
            path_str(&models),
            "--json",
        ],
        4,
        "DIMENSION_MISMATCH",
    );
    assert_eq!(message, "input has 3 values but model m1 expects 2");
}

#[test]
fn bad_vector_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    train_xor(dir.path(), "m1");
    let models = dir.path().join("models");
    for vector in ["[\"a\", 1]", "[]", "1,x"] {
        assert_failure(
            &[
                "predict",
                "m1",
                vector,
                "--models-dir",
                path_str(&models),
                "--json",
            ],
            2,
            "INVALID_PAYLOAD",
        );
    }
}

#[test]
fn bad_csv_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    for (file, words) in [
        ("empty.csv", "empty file"),
        ("header_only.csv", "no data rows"),
        ("single_column.csv", "feature column"),
    ] {
        let csv = data_file(file);
        let message = assert_failure(
            &[
                "train",
                path_str(&csv),
                "bad",
                "--models-dir",
                path_str(&models),
                "--json",
            ],
            2,
            "INVALID_CSV",
        );
        assert!(message.contains(words), "{file}: {message}");
    }
    assert!(!models.join("bad.model").exists());
}

#[test]
fn missing_csv_file_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("absent.csv");
    assert_failure(
        &[
            "train",
            path_str(&csv),
            "m",
            "--models-dir",
            path_str(dir.path()),
            "--json",
        ],
        1,
        "IO_ERROR",
    );
}

#[test]
fn corrupt_model_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.model"), b"not a model").unwrap();
    let message = assert_failure(
        &[
            "predict",
            "broken",
            "1",
            "--models-dir",
            path_str(dir.path()),
            "--json",
        ],
        1,
        "INVALID_MODEL",
    );
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn bad_flag_with_json_prints_json() {
    let output = ai_core(&["train", "x.csv", "m", "--json", "--epochs", "many"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout_json(&output)["code"], "INVALID_PAYLOAD");
}

#[test]
fn check_reports_summary_without_training() {
    let csv = data_file("ragged_rows.csv");
    let output = ai_core(&["check", path_str(&csv), "--json"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let summary = stdout_json(&output);
    assert_eq!(summary["rows"], 100);
    assert_eq!(summary["features"], 2);
    assert_eq!(summary["task"], "binary");
    assert_eq!(summary["skippedRows"], 2);
    assert_eq!(summary["skippedLines"], serde_json::json!([52, 53]));

    let text_labels = data_file("quoted_text_labels.csv");
    let summary = stdout_json(&ai_core(&["check", path_str(&text_labels), "--json"]));
    assert_eq!(summary["task"], "multiclass");
    assert_eq!(summary["classes"].as_array().unwrap().len(), 3);
}

#[test]
fn check_rejects_bad_csv() {
    let csv = data_file("header_only.csv");
    let message = assert_failure(&["check", path_str(&csv), "--json"], 2, "INVALID_CSV");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn info_describes_model() {
    let dir = tempfile::tempdir().unwrap();
    let summary = train_xor(dir.path(), "x1");
    let file = summary["file"].as_str().unwrap();
    let output = ai_core(&["info", file, "--json"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let header = stdout_json(&output);
    assert_eq!(header["layer_sizes"], serde_json::json!([2, 64, 32, 1]));
    assert_eq!(header["output_activation"], "sigmoid");
    assert_eq!(header["training"]["date"], "2023-11-14T22:13:20Z");
    assert_eq!(header["training"]["dataset_rows"], 4);

    let models = dir.path().join("models");
    let text = ai_core(&["info", "x1", "--models-dir", path_str(&models)]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("layers: 2 -> 64 -> 32 -> 1"), "{text}");
    assert!(text.contains("classes: 0 | 1"), "{text}");
}

#[test]
fn cli_training_is_byte_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let csv = data_file("semicolon_decimal_comma.csv");
    let train = |id: &str| {
        let models = dir.path().join("models");
        let output = ai_core(&[
            "train",
            path_str(&csv),
            id,
            "--models-dir",
            path_str(&models),
            "--threads",
            "2",
            "--epochs",
            "20",
        ]);
        assert!(output.status.success(), "{}", stderr_text(&output));
        std::fs::read(models.join(format!("{id}.model"))).unwrap()
    };
    assert_eq!(train("a"), train("b"));
}

#[test]
fn train_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    train_xor(dir.path(), "x1");
    train_xor(dir.path(), "x1");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["x1.model"]);
}
