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

/// What the model learns.
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
        distinct_numbers(&labels.numbers).into_iter().map(format_number).collect()
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
    let task = if classes.len() == 2 { Task::Binary } else { Task::Multiclass };
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
