//! Task detection (binary, multi-class or regression) and the encoding of
//! labels as training targets.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::dataset::{format_number, LabelColumn, NUMERIC_LABEL};
use crate::error::{Error, Result};

/// Most distinct integer labels that `auto` still treats as classes.
pub const MAX_AUTO_CLASSES: usize = 20;

/// Upper bound on the number of classes of any classifier.
pub const MAX_CLASSES: usize = 1024;

/// Learning task of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Two classes: one sigmoid output, binary cross-entropy.
    Binary,
    /// Three or more classes: softmax outputs, cross-entropy.
    Multiclass,
    /// A real-valued label: one identity output on min-max scaled targets.
    Regression,
}

impl Task {
    /// Returns the name used in JSON output and model files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
            Task::Regression => "regression",
        }
    }

    /// Returns true for binary and multi-class tasks.
    pub fn is_classification(self) -> bool {
        self != Task::Regression
    }
}

/// The user's choice of task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TaskChoice {
    /// Classes for text labels and for few distinct integer labels, otherwise
    /// regression.
    #[default]
    Auto,
    /// Every distinct label is a class.
    Classify,
    /// Labels are real numbers.
    Regress,
}

/// Training targets derived from a label column.
#[derive(Debug, Clone)]
pub struct Targets {
    pub task: Task,
    /// Class labels in output order; empty for regression.
    pub classes: Vec<String>,
    /// Class index of each row; empty for regression.
    pub class_of_row: Vec<u32>,
    /// Label value of each row; empty for classification.
    pub values: Vec<f64>,
}

impl Targets {
    /// Returns the number of network outputs the task needs.
    pub fn output_count(&self) -> usize {
        match self.task {
            Task::Binary | Task::Regression => 1,
            Task::Multiclass => self.classes.len(),
        }
    }
}

/// Chooses the task for the labels and encodes them.
pub fn encode_targets(labels: &LabelColumn, choice: TaskChoice) -> Result<Targets> {
    match choice {
        TaskChoice::Regress => encode_regression(labels),
        TaskChoice::Classify => encode_classes(labels),
        TaskChoice::Auto if labels.has_text() || looks_like_classes(labels) => {
            encode_classes(labels)
        }
        TaskChoice::Auto => encode_regression(labels),
    }
}

/// Returns the task that `encode_targets` would choose.
pub fn detect_task(labels: &LabelColumn, choice: TaskChoice) -> Result<Task> {
    encode_targets(labels, choice).map(|t| t.task)
}

/// Integer labels with at most `MAX_AUTO_CLASSES` distinct values and at
/// least two rows per distinct value on average are classes.
fn looks_like_classes(labels: &LabelColumn) -> bool {
    if labels.numbers.iter().any(|v| v.fract() != 0.0) {
        return false;
    }
    let distinct = distinct_numbers(&labels.numbers).len();
    distinct <= MAX_AUTO_CLASSES && distinct * 2 <= labels.len()
}

fn distinct_numbers(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    sorted
}

fn encode_regression(labels: &LabelColumn) -> Result<Targets> {
    if let Some(row) = labels.text_ids.iter().position(|&id| id != NUMERIC_LABEL) {
        return Err(Error::InvalidCsv(format!(
            "regression needs numeric labels, but label '{}' is not a number; \
             use --task classify for text labels",
            labels.text_of(row)
        )));
    }
    Ok(Targets {
        task: Task::Regression,
        classes: Vec::new(),
        class_of_row: Vec::new(),
        values: labels.numbers.clone(),
    })
}

/// Numbers sort numerically; with any text label all labels sort as text.
fn encode_classes(labels: &LabelColumn) -> Result<Targets> {
    let classes: Vec<String> = if labels.has_text() {
        let names: BTreeSet<String> = (0..labels.len()).map(|r| labels.text_of(r)).collect();
        names.into_iter().collect()
    } else {
        distinct_numbers(&labels.numbers)
            .into_iter()
            .map(format_number)
            .collect()
    };

    if classes.len() < 2 {
        return Err(Error::InvalidCsv(format!(
            "the label column has only one value ({}); a classifier needs at least two classes",
            classes.first().map(String::as_str).unwrap_or("")
        )));
    }
    if classes.len() > MAX_CLASSES {
        return Err(Error::InvalidCsv(format!(
            "the label column has {} distinct values, more than the {MAX_CLASSES} classes \
             allowed; use --task regress for real-valued labels",
            classes.len()
        )));
    }

    let class_of_row = class_indices(labels, &classes);
    let task = if classes.len() == 2 {
        Task::Binary
    } else {
        Task::Multiclass
    };
    Ok(Targets {
        task,
        classes,
        class_of_row,
        values: Vec::new(),
    })
}

/// Maps each row's label to its index in `classes`.
fn class_indices(labels: &LabelColumn, classes: &[String]) -> Vec<u32> {
    let index_of: HashMap<&str, u32> = classes
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i as u32))
        .collect();
    let text_class: Vec<u32> = labels.texts.iter().map(|t| index_of[t.as_str()]).collect();
    let mut number_class: HashMap<u64, u32> = HashMap::new();

    (0..labels.len())
        .map(|row| match labels.text_ids[row] {
            NUMERIC_LABEL => {
                let value = labels.numbers[row];
                *number_class
                    .entry(value.to_bits())
                    .or_insert_with(|| index_of[format_number(value).as_str()])
            }
            id => text_class[id as usize],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::parse_csv;

    fn labels_of(text: &str) -> LabelColumn {
        parse_csv(text.as_bytes()).unwrap().labels
    }

    fn rows_with_labels(labels: &[&str]) -> LabelColumn {
        let mut text = String::from("x,label\n");
        for (i, label) in labels.iter().enumerate() {
            text.push_str(&format!("{i},{label}\n"));
        }
        labels_of(&text)
    }

    #[test]
    fn two_integer_labels_are_binary() {
        let targets =
            encode_targets(&rows_with_labels(&["0", "1", "1", "0"]), TaskChoice::Auto).unwrap();
        assert_eq!(targets.task, Task::Binary);
        assert_eq!(targets.classes, vec!["0", "1"]);
        assert_eq!(targets.class_of_row, vec![0, 1, 1, 0]);
    }

    #[test]
    fn integer_classes_sort_numerically() {
        let labels = rows_with_labels(&["10", "2", "2", "10", "3", "3", "10", "2"]);
        let targets = encode_targets(&labels, TaskChoice::Auto).unwrap();
        assert_eq!(targets.task, Task::Multiclass);
        assert_eq!(targets.classes, vec!["2", "3", "10"]);
        assert_eq!(targets.class_of_row[0], 2);
    }

    #[test]
    fn real_labels_are_regression() {
        let targets = encode_targets(
            &rows_with_labels(&["0.5", "1.25", "3", "4"]),
            TaskChoice::Auto,
        )
        .unwrap();
        assert_eq!(targets.task, Task::Regression);
        assert_eq!(targets.values, vec![0.5, 1.25, 3.0, 4.0]);
    }

    #[test]
    fn many_distinct_integers_are_regression() {
        let labels: Vec<String> = (0..30).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(
            detect_task(&rows_with_labels(&refs), TaskChoice::Auto).unwrap(),
            Task::Regression
        );
    }

    #[test]
    fn text_labels_are_classes() {
        let targets =
            encode_targets(&rows_with_labels(&["b", "a", "c", "a"]), TaskChoice::Auto).unwrap();
        assert_eq!(targets.task, Task::Multiclass);
        assert_eq!(targets.classes, vec!["a", "b", "c"]);
    }

    #[test]
    fn classify_override_on_real_labels() {
        let targets = encode_targets(
            &rows_with_labels(&["0.5", "1.5", "0.5"]),
            TaskChoice::Classify,
        )
        .unwrap();
        assert_eq!(targets.task, Task::Binary);
        assert_eq!(targets.classes, vec!["0.5", "1.5"]);
    }

    #[test]
    fn regress_override_rejects_text() {
        let error =
            encode_targets(&rows_with_labels(&["1", "a"]), TaskChoice::Regress).unwrap_err();
        assert_eq!(error.code(), "INVALID_CSV");
        assert!(error.to_string().contains("'a'"), "{error}");
    }

    #[test]
    fn single_class_is_rejected() {
        let error =
            encode_targets(&rows_with_labels(&["1", "1", "1"]), TaskChoice::Auto).unwrap_err();
        assert!(error.to_string().contains("only one value"), "{error}");
    }
}
