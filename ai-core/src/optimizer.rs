//! Parameter updates: plain stochastic gradient descent and Adam.

use serde::{Deserialize, Serialize};

use crate::network::{Layer, Mlp};

/// Default learning rate of plain SGD.
pub const DEFAULT_SGD_LEARNING_RATE: f64 = 0.1;
/// Default learning rate of Adam.
pub const DEFAULT_ADAM_LEARNING_RATE: f64 = 0.005;

const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f32 = 1e-8;

/// Update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain stochastic gradient descent: `w -= rate * gradient`.
    Sgd,
    /// Adam (Kingma and Ba, 2015) with beta1 0.9, beta2 0.999.
    #[default]
    Adam,
}

impl OptimizerKind {
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Sgd => DEFAULT_SGD_LEARNING_RATE,
            OptimizerKind::Adam => DEFAULT_ADAM_LEARNING_RATE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
        }
    }
}

/// Optimizer state, allocated once per training run.
pub struct Optimizer {
    kind: OptimizerKind,
    learning_rate: f64,
    steps: i32,
    /// Adam's first and second moment estimates; empty for SGD.
    first_moment: Vec<Layer>,
    second_moment: Vec<Layer>,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, learning_rate: f64, net: &Mlp) -> Optimizer {
        let (first_moment, second_moment) = match kind {
            OptimizerKind::Sgd => (Vec::new(), Vec::new()),
            OptimizerKind::Adam => (net.zeros_like(), net.zeros_like()),
        };
        Optimizer {
            kind,
            learning_rate,
            steps: 0,
            first_moment,
            second_moment,
        }
    }

    /// Applies one update with gradient `gradients * scale`; the trainer
    /// passes summed gradients and `1 / batch rows` so the step uses the mean.
    pub fn step(&mut self, net: &mut Mlp, gradients: &[Layer], scale: f32) {
        self.steps = self.steps.saturating_add(1);
        match self.kind {
            OptimizerKind::Sgd => self.step_sgd(net, gradients, scale),
            OptimizerKind::Adam => self.step_adam(net, gradients, scale),
        }
    }

    fn step_sgd(&self, net: &mut Mlp, gradients: &[Layer], scale: f32) {
        let rate = self.learning_rate as f32 * scale;
        for (layer, gradient) in net.layers.iter_mut().zip(gradients) {
            for (params, grads) in layer
                .parameters_mut()
                .into_iter()
                .zip(gradient.parameters())
            {
                for (p, g) in params.iter_mut().zip(grads) {
                    *p -= rate * g;
                }
            }
        }
    }

    fn step_adam(&mut self, net: &mut Mlp, gradients: &[Layer], scale: f32) {
        let correction1 = 1.0 - ADAM_BETA1.powi(self.steps);
        let correction2 = 1.0 - ADAM_BETA2.powi(self.steps);
        let rate = (self.learning_rate * correction2.sqrt() / correction1) as f32;
        let (beta1, beta2) = (ADAM_BETA1 as f32, ADAM_BETA2 as f32);

        let layers = net.layers.iter_mut().zip(gradients);
        let moments = self
            .first_moment
            .iter_mut()
            .zip(self.second_moment.iter_mut());
        for ((layer, gradient), (first, second)) in layers.zip(moments) {
            let groups = layer
                .parameters_mut()
                .into_iter()
                .zip(gradient.parameters())
                .zip(
                    first
                        .parameters_mut()
                        .into_iter()
                        .zip(second.parameters_mut()),
                );
            for ((params, grads), (means, variances)) in groups {
                // Zipped iterators have no bounds checks, so this vectorizes.
                let values = params.iter_mut().zip(grads.iter());
                let moments = means.iter_mut().zip(variances.iter_mut());
                for ((p, &g), (m, v)) in values.zip(moments) {
                    let g = g * scale;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= rate * *m / (v.sqrt() + ADAM_EPSILON);
                }
            }
        }
    }
}
