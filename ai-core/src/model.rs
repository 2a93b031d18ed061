//! A trained model: the network plus what predictions need around it
//! (normalization, task, class labels) and the training metadata.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels::Task;
use crate::network::{argmax, Mlp, OutputActivation};
use crate::normalize::MinMax;

/// Everything in a model file except the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    pub task: Task,
    /// Inputs, hidden layer sizes..., outputs.
    pub layer_sizes: Vec<usize>,
    /// Activation of every hidden layer; always `relu` in this version.
    pub hidden_activation: String,
    pub output_activation: OutputActivation,
    pub feature_names: Vec<String>,
    pub label_name: String,
    /// Feature scaling fitted on the training rows.
    pub normalization: MinMax,
    /// Label scaling of a regression model; `None` for classifiers.
    pub target_normalization: Option<MinMax>,
    /// Class labels in output order; `None` for regression. A binary model
    /// has two, and its single output is the probability of the second.
    pub classes: Option<Vec<String>>,
    pub training: TrainingInfo,
}

/// Training settings, data sizes and final metrics stored with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// UTC time of training, RFC 3339; `SOURCE_DATE_EPOCH` overrides the clock.
    pub date: String,
    pub epochs: usize,
    pub epochs_requested: usize,
    pub optimizer: String,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub threads: usize,
    /// Usable rows of the dataset: training plus validation rows.
    pub dataset_rows: usize,
    pub training_rows: usize,
    pub validation_rows: usize,
    pub skipped_rows: usize,
    /// Mean training loss of the saved weights on the training rows.
    pub loss: f64,
    /// Training accuracy of a classifier; `None` for regression.
    pub accuracy: Option<f64>,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    /// Coefficient of determination on the training rows, regression only.
    pub r2: Option<f64>,
    /// Root mean squared error in label units on the training rows,
    /// regression only.
    pub rmse: Option<f64>,
}

/// A network with its header.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub header: ModelHeader,
    pub network: Mlp,
}

/// Prediction for one input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Raw outputs: a probability for binary, one probability per class for
    /// multi-class, the value in label units for regression.
    pub outputs: Vec<f64>,
    /// Predicted class label; `None` for regression.
    pub label: Option<String>,
    /// Predicted value in label units; `None` for classifiers.
    pub value: Option<f64>,
}

impl Model {
    pub fn input_count(&self) -> usize {
        self.network.input_count()
    }

    /// Predicts every row of `inputs`, which must each have `input_count()`
    /// values. `model_id` names the model in a dimension-mismatch error.
    pub fn predict(&self, model_id: &str, inputs: &[Vec<f64>]) -> Result<Vec<Prediction>> {
        let width = self.input_count();
        let mut scaled = Array2::<f32>::zeros((inputs.len(), width));
        for (row, values) in inputs.iter().enumerate() {
            if values.len() != width {
                return Err(Error::DimensionMismatch {
                    model: model_id.to_string(),
                    got: values.len(),
                    expected: width,
                });
            }
            let out = scaled.row_mut(row).into_slice().expect("contiguous row");
            self.header.normalization.scale_row(values, out);
        }

        let outputs = self.network.predict(scaled.view());
        Ok(outputs
            .rows()
            .into_iter()
            .map(|row| self.interpret(row.as_slice().expect("contiguous row")))
            .collect())
    }

    /// Turns one row of network outputs into a prediction.
    fn interpret(&self, output: &[f32]) -> Prediction {
        let classes = self.header.classes.as_deref().unwrap_or(&[]);
        match self.header.task {
            Task::Binary => Prediction {
                outputs: vec![widen(output[0])],
                label: Some(classes[usize::from(output[0] >= 0.5)].clone()),
                value: None,
            },
            Task::Multiclass => Prediction {
                outputs: output.iter().map(|&v| widen(v)).collect(),
                label: Some(classes[argmax(output)].clone()),
                value: None,
            },
            Task::Regression => {
                let scaler = self
                    .header
                    .target_normalization
                    .as_ref()
                    .expect("regression scaler");
                let value = scaler.unscale(0, output[0] as f64);
                Prediction {
                    outputs: vec![value],
                    label: None,
                    value: Some(value),
                }
            }
        }
    }
}

/// Converts an `f32` output to the `f64` with the same shortest decimal form,
/// so JSON shows `0.93` rather than `0.9300000071525574`.
fn widen(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(value as f64)
}
