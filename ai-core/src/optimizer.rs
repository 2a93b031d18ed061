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
    /// Adam's first and second moment estimates, one per layer. SGD keeps
    /// them too, unused, so that both rules split the same way by layer.
    first_moment: Vec<Layer>,
    second_moment: Vec<Layer>,
}

/// The update of one step, ready to apply layer by layer, possibly on
/// several threads.
#[derive(Debug, Clone, Copy)]
pub struct StepRule {
    kind: OptimizerKind,
    /// Learning rate, bias-corrected for Adam.
    rate: f32,
    /// Factor applied to every gradient before the update.
    scale: f32,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, learning_rate: f64, net: &Mlp) -> Optimizer {
        Optimizer {
            kind,
            learning_rate,
            steps: 0,
            first_moment: net.zeros_like(),
            second_moment: net.zeros_like(),
        }
    }

    /// Applies one update with gradient `gradients * scale`; the trainer
    /// passes summed gradients and `1 / batch rows` so the step uses the mean.
    pub fn step(&mut self, net: &mut Mlp, gradients: &[Layer], scale: f32) {
        let rule = self.begin_step(scale);
        let (firsts, seconds) = self.moments_mut();
        let layers = net.layers.iter_mut().zip(gradients);
        for ((layer, gradient), (first, second)) in layers.zip(firsts.iter_mut().zip(seconds)) {
            rule.apply(layer, gradient, first, second);
        }
    }

    /// Counts a new step and returns its rule. The caller applies the rule
    /// once to every layer, using `moments_mut`; nothing checks that it does.
    pub fn begin_step(&mut self, scale: f32) -> StepRule {
        self.steps = self.steps.saturating_add(1);
        let rate = match self.kind {
            OptimizerKind::Sgd => self.learning_rate,
            OptimizerKind::Adam => {
                let correction1 = 1.0 - ADAM_BETA1.powi(self.steps);
                let correction2 = 1.0 - ADAM_BETA2.powi(self.steps);
                self.learning_rate * correction2.sqrt() / correction1
            }
        };
        StepRule {
            kind: self.kind,
            rate: rate as f32,
            scale,
        }
    }

    /// Returns the per-layer first and second moment estimates.
    pub fn moments_mut(&mut self) -> (&mut [Layer], &mut [Layer]) {
        (&mut self.first_moment, &mut self.second_moment)
    }
}

impl StepRule {
    /// Updates one layer from its gradient and moment estimates.
    pub fn apply(
        &self,
        layer: &mut Layer,
        gradient: &Layer,
        first: &mut Layer,
        second: &mut Layer,
    ) {
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
            match self.kind {
                OptimizerKind::Sgd => self.apply_sgd(params, grads),
                OptimizerKind::Adam => self.apply_adam(params, grads, means, variances),
            }
        }
    }

    fn apply_sgd(&self, params: &mut [f32], grads: &[f32]) {
        let rate = self.rate * self.scale;
        for (p, g) in params.iter_mut().zip(grads) {
            *p -= rate * g;
        }
    }

    fn apply_adam(
        &self,
        params: &mut [f32],
        grads: &[f32],
        means: &mut [f32],
        variances: &mut [f32],
    ) {
        let (beta1, beta2) = (ADAM_BETA1 as f32, ADAM_BETA2 as f32);
        // Zipped iterators have no bounds checks, so this vectorizes.
        let values = params.iter_mut().zip(grads.iter());
        let moments = means.iter_mut().zip(variances.iter_mut());
        for ((p, &g), (m, v)) in values.zip(moments) {
            let g = g * self.scale;
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *p -= self.rate * *m / (v.sqrt() + ADAM_EPSILON);
        }
    }
}
