//! Each real-world CSV case in tests/data with its expected outcome: the
//! loader's result, and for trainable files, the trained model's quality.

mod common;

use ai_core::labels::Task;
use common::{load_case, train_default};

fn load_error(name: &str) -> String {
    let error = load_case(name).expect_err("the file must be rejected");
    assert_eq!(error.code(), "INVALID_CSV", "{name}: {error}");
    assert_eq!(error.exit_code(), 2);
    error.to_string()
}

#[test]
fn bom_quoted_header_trains_binary_xor() {
    let data = load_case("bom_quoted_header.csv").unwrap();
    assert!(data.has_header);
    assert_eq!(data.feature_names, vec!["x1", "x2"]);
    assert_eq!(data.rows(), 100);
    let model = train_default(&data).unwrap().model;
    assert_eq!(model.header.task, Task::Binary);
    assert_eq!(model.input_count(), 2);
    assert_eq!(model.header.training.accuracy, Some(1.0));
}

#[test]
fn crlf_line_endings_leave_no_carriage_return() {
    let data = load_case("crlf_line_endings.csv").unwrap();
    assert_eq!(data.feature_count(), 2);
    assert_eq!(data.rows(), 100);
    assert!(data.skipped_lines.is_empty());
    assert_eq!(data.label_name, "label");
    let names = data.feature_names.iter().chain([&data.label_name]);
    assert!(names.into_iter().all(|n| !n.contains('\r')));
    assert!(
        data.labels.texts.is_empty(),
        "labels read as text: {:?}",
        data.labels.texts
    );
    let model = train_default(&data).unwrap().model;
    assert_eq!(model.header.task, Task::Binary);
}

#[test]
fn semicolon_decimal_comma_trains_circles() {
    let data = load_case("semicolon_decimal_comma.csv").unwrap();
    assert_eq!(data.separator, b';');
    assert_eq!(data.feature_count(), 2);
    assert_eq!(data.rows(), 200);
    let model = train_default(&data).unwrap().model;
    assert_eq!(
        model.header.classes.as_deref(),
        Some(&["0".to_string(), "1".to_string()][..])
    );
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy > 0.9, "accuracy {accuracy}");
}

#[test]
fn quoted_text_labels_train_three_classes() {
    let data = load_case("quoted_text_labels.csv").unwrap();
    let model = train_default(&data).unwrap().model;
    let classes = model.header.classes.clone().unwrap();
    assert_eq!(model.header.task, Task::Multiclass);
    assert_eq!(
        classes,
        vec!["large, dark", "medium, striped", "small, pale"]
    );

    let predictions = model
        .predict("q", &[vec![1.6, 0.25], vec![5.4, 2.0]])
        .unwrap();
    for prediction in &predictions {
        let label = prediction.label.as_ref().unwrap();
        assert!(classes.contains(label), "label {label} is not a class");
    }
    assert_eq!(predictions[0].label.as_deref(), Some("small, pale"));
    assert_eq!(predictions[1].label.as_deref(), Some("large, dark"));
}

#[test]
fn trailing_blank_lines_give_exactly_100_rows() {
    let data = load_case("trailing_blank_lines.csv").unwrap();
    assert_eq!(data.rows(), 100);
    assert!(data.skipped_lines.is_empty());
    assert!(train_default(&data).is_ok());
}

#[test]
fn nan_inf_empty_cells_skip_named_lines() {
    let data = load_case("nan_inf_empty_cells.csv").unwrap();
    assert_eq!(data.skipped_lines, vec![42, 43, 44, 46]);
    // Line 45 is " 1, 0,1": spaces around numbers are allowed.
    let row = (0..data.rows()).position(|r| data.row(r) == [1.0, 0.0] && r >= 40);
    assert!(row.is_some(), "line 45 was not used");
    assert!(data.features.iter().all(|v| v.is_finite()));
    let model = train_default(&data).unwrap().model;
    assert_eq!(model.header.training.skipped_rows, 4);
    assert_eq!(model.header.training.dataset_rows, 41);
}

#[test]
fn header_only_is_no_data_rows() {
    let message = load_error("header_only.csv");
    assert!(message.contains("no data rows"), "{message}");
}

#[test]
fn single_column_needs_feature_column() {
    let message = load_error("single_column.csv");
    assert!(message.contains("at least one feature column"), "{message}");
}

#[test]
fn ragged_rows_skip_lines_52_and_53() {
    let data = load_case("ragged_rows.csv").unwrap();
    assert_eq!(data.skipped_lines, vec![52, 53]);
    assert_eq!(data.rows(), 100);
    let model = train_default(&data).unwrap().model;
    assert_eq!(model.header.training.accuracy, Some(1.0));
}

#[test]
fn all_negative_column_trains_above_095() {
    let data = load_case("all_negative_column.csv").unwrap();
    let model = train_default(&data).unwrap().model;
    let scaler = &model.header.normalization;
    assert!(
        scaler.max[0] < 0.0,
        "max of an all-negative column is {}",
        scaler.max[0]
    );
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy > 0.95, "accuracy {accuracy}");
}

#[test]
fn constant_column_trains_without_nan() {
    let data = load_case("constant_column.csv").unwrap();
    let model = train_default(&data).unwrap().model;
    assert!(model.network.is_finite());
    assert_eq!(model.header.normalization.min[1], 5.0);
    assert_eq!(model.header.normalization.max[1], 5.0);
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy > 0.95, "accuracy {accuracy}");
    let prediction = &model.predict("c", &[vec![0.5, 5.0]]).unwrap()[0];
    assert!(prediction.outputs.iter().all(|v| v.is_finite()));
}

#[test]
fn regression_linear_predicts_seven_at_three() {
    let data = load_case("regression_linear.csv").unwrap();
    let model = train_default(&data).unwrap().model;
    assert_eq!(model.header.task, Task::Regression);
    let value = model.predict("r", &[vec![3.0]]).unwrap()[0].value.unwrap();
    assert!((value - 7.0).abs() < 0.3, "predicted {value} for x = 3");
}

#[test]
fn empty_file_is_rejected() {
    let message = load_error("empty.csv");
    assert!(message.contains("empty file"), "{message}");
}
