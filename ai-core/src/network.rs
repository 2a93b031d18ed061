//! The multi-layer perceptron: parameters, He initialization, and batched
//! forward and backward passes as matrix products into preallocated buffers.
//!
//! Hidden layers use ReLU. The output activation and the loss come in
//! matched pairs, so the output error is always `prediction - target`:
//! sigmoid with binary cross-entropy, softmax with cross-entropy, and
//! identity with half the squared error.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array1, Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Probabilities are clamped to `[PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON]`
/// inside a logarithm.
const PROBABILITY_EPSILON: f64 = 1e-7;

/// Activation of the output layer, which also fixes the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputActivation {
    Sigmoid,
    Softmax,
    Identity,
}

/// One dense layer: `output = input · weights + bias`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Shape `(inputs, outputs)`, row-major.
    pub weights: Array2<f32>,
    pub bias: Array1<f32>,
}

impl Layer {
    fn zeros(inputs: usize, outputs: usize) -> Layer {
        Layer {
            weights: Array2::zeros((inputs, outputs)),
            bias: Array1::zeros(outputs),
        }
    }

    /// Returns the weights then the bias as two flat slices.
    pub fn parameters(&self) -> [&[f32]; 2] {
        [
            self.weights.as_slice().expect("weights are contiguous"),
            self.bias.as_slice().expect("bias is contiguous"),
        ]
    }

    /// Returns the weights then the bias as two flat mutable slices.
    pub fn parameters_mut(&mut self) -> [&mut [f32]; 2] {
        [
            self.weights.as_slice_mut().expect("weights are contiguous"),
            self.bias.as_slice_mut().expect("bias is contiguous"),
        ]
    }
}

/// A fully connected network with ReLU hidden layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    pub layers: Vec<Layer>,
    pub output: OutputActivation,
}

impl Mlp {
    /// Builds a network with layer sizes `sizes` (inputs, hidden..., outputs),
    /// He-initialized weights (normal, standard deviation `sqrt(2 / inputs)`)
    /// and zero biases.
    pub fn new_he(sizes: &[usize], output: OutputActivation, rng: &mut impl Rng) -> Mlp {
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let (inputs, outputs) = (pair[0], pair[1]);
                let normal = Normal::new(0.0, (2.0 / inputs as f64).sqrt()).expect("valid sigma");
                let weights =
                    Array2::from_shape_fn((inputs, outputs), |_| normal.sample(rng) as f32);
                Layer {
                    weights,
                    bias: Array1::zeros(outputs),
                }
            })
            .collect();
        Mlp { layers, output }
    }

    /// Returns a network of the given sizes with every parameter zero.
    pub fn zeros(sizes: &[usize], output: OutputActivation) -> Mlp {
        let layers = sizes.windows(2).map(|p| Layer::zeros(p[0], p[1])).collect();
        Mlp { layers, output }
    }

    /// Returns the layer sizes: inputs, hidden..., outputs.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.input_count()];
        sizes.extend(self.layers.iter().map(|l| l.bias.len()));
        sizes
    }

    pub fn input_count(&self) -> usize {
        self.layers[0].weights.nrows()
    }

    pub fn output_count(&self) -> usize {
        self.layers.last().expect("at least one layer").bias.len()
    }

    /// Returns a zeroed set of layers with this network's shapes, used for
    /// gradients and optimizer state.
    pub fn zeros_like(&self) -> Vec<Layer> {
        self.layers
            .iter()
            .map(|l| Layer::zeros(l.weights.nrows(), l.weights.ncols()))
            .collect()
    }

    /// Returns true when every parameter is a finite number.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .flat_map(|l| l.parameters())
            .all(|values| values.iter().all(|v| v.is_finite()))
    }

    /// Copies all parameters from `other`, which must have the same shapes.
    pub fn copy_from(&mut self, other: &Mlp) {
        for (mine, theirs) in self.layers.iter_mut().zip(&other.layers) {
            mine.weights.assign(&theirs.weights);
            mine.bias.assign(&theirs.bias);
        }
    }

    /// Runs the network on the rows of `inputs` (shape `(rows, inputs)`) and
    /// returns the outputs. Allocates; training uses `Workspace` instead.
    pub fn predict(&self, inputs: ArrayView2<f32>) -> Array2<f32> {
        let rows = inputs.nrows();
        let mut workspace = Workspace::new(self, rows.max(1));
        workspace.input_mut(rows).assign(&inputs);
        workspace.forward(self, rows);
        workspace.output(rows).to_owned()
    }
}

/// Buffers for the forward and backward pass of up to `capacity` rows.
///
/// Each training thread owns one, so the training loop allocates no
/// activation or gradient memory per batch.
// NOTE: matrixmultiply 0.3, behind `general_mat_mul`, still allocates and
// frees a small packing buffer inside each matrix product.

#[derive(Debug, Clone)]
pub struct Workspace {
    capacity: usize,
    /// `activations[0]` is the input; `activations[l + 1]` is layer `l`'s
    /// output after its activation. Shape `(capacity, size)`.
    activations: Vec<Array2<f32>>,
    /// `deltas[l]`: loss gradient with respect to layer `l`'s pre-activation.
    deltas: Vec<Array2<f32>>,
    /// Targets of the rows: 0/1 for sigmoid, one-hot for softmax, the scaled
    /// value for identity. Shape `(capacity, outputs)`.
    targets: Array2<f32>,
    /// Gradient of the summed loss of the last backward pass.
    pub gradients: Vec<Layer>,
}

impl Workspace {
    pub fn new(net: &Mlp, capacity: usize) -> Workspace {
        let sizes = net.sizes();
        Workspace {
            capacity,
            activations: sizes
                .iter()
                .map(|&n| Array2::zeros((capacity, n)))
                .collect(),
            deltas: sizes[1..]
                .iter()
                .map(|&n| Array2::zeros((capacity, n)))
                .collect(),
            targets: Array2::zeros((capacity, net.output_count())),
            gradients: net.zeros_like(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Returns the input rows to fill, as a `(rows, inputs)` view.
    pub fn input_mut(&mut self, rows: usize) -> ndarray::ArrayViewMut2<'_, f32> {
        self.activations[0].slice_mut(s![..rows, ..])
    }

    /// Returns the target rows to fill, as a `(rows, outputs)` view.
    pub fn targets_mut(&mut self, rows: usize) -> ndarray::ArrayViewMut2<'_, f32> {
        self.targets.slice_mut(s![..rows, ..])
    }

    /// Copies rows `indices` of row-major `inputs` and `targets` matrices
    /// into the buffers.
    pub fn load_rows(&mut self, inputs: &[f32], targets: &[f32], indices: &[u32]) {
        let input_width = self.activations[0].ncols();
        let target_width = self.targets.ncols();
        let input_rows = contiguous(&mut self.activations[0]);
        let target_rows = self.targets.as_slice_mut().expect("contiguous targets");

        for (slot, &index) in indices.iter().enumerate() {
            let row = index as usize;
            input_rows[slot * input_width..(slot + 1) * input_width]
                .copy_from_slice(&inputs[row * input_width..(row + 1) * input_width]);
            target_rows[slot * target_width..(slot + 1) * target_width]
                .copy_from_slice(&targets[row * target_width..(row + 1) * target_width]);
        }
    }

    /// Returns the network output of the last forward pass.
    pub fn output(&self, rows: usize) -> ArrayView2<'_, f32> {
        self.activations
            .last()
            .expect("output layer")
            .slice(s![..rows, ..])
    }

    /// Runs the first `rows` input rows through the network.
    pub fn forward(&mut self, net: &Mlp, rows: usize) {
        assert!(
            rows <= self.capacity,
            "batch of {rows} rows exceeds the workspace"
        );
        let last = net.layers.len() - 1;
        for (index, layer) in net.layers.iter().enumerate() {
            let (before, after) = self.activations.split_at_mut(index + 1);
            let input = before[index].slice(s![..rows, ..]);
            let mut output = after[0].slice_mut(s![..rows, ..]);
            general_mat_mul(1.0, &input, &layer.weights, 0.0, &mut output);

            let width = layer.bias.len();
            let bias = layer.bias.as_slice().expect("contiguous bias");
            let values = output.as_slice_mut().expect("row prefix is contiguous");
            if index < last {
                add_bias_relu(values, bias);
            } else {
                add_bias(values, bias);
                apply_output(net.output, values, width);
            }
        }
    }

    /// Computes the gradient of the summed loss over the first `rows` rows
    /// into `gradients`, after `forward` on the same rows.
    pub fn backward(&mut self, net: &Mlp, rows: usize) {
        let last = net.layers.len() - 1;
        {
            let output = self.activations[last + 1].slice(s![..rows, ..]);
            let targets = self.targets.slice(s![..rows, ..]);
            let mut delta = self.deltas[last].slice_mut(s![..rows, ..]);
            let deltas = delta.as_slice_mut().expect("contiguous");
            let outputs = output.to_slice().expect("contiguous");
            let targets = targets.to_slice().expect("contiguous");
            for ((d, p), t) in deltas.iter_mut().zip(outputs).zip(targets) {
                *d = p - t;
            }
        }

        for index in (0..=last).rev() {
            let input = self.activations[index].slice(s![..rows, ..]);
            let delta = self.deltas[index].slice(s![..rows, ..]);
            let gradient = &mut self.gradients[index];
            general_mat_mul(1.0, &input.t(), &delta, 0.0, &mut gradient.weights);
            sum_rows(
                delta,
                gradient.bias.as_slice_mut().expect("contiguous bias"),
            );

            if index > 0 {
                let (before, after) = self.deltas.split_at_mut(index);
                let delta = after[0].slice(s![..rows, ..]);
                let mut previous = before[index - 1].slice_mut(s![..rows, ..]);
                general_mat_mul(
                    1.0,
                    &delta,
                    &net.layers[index].weights.t(),
                    0.0,
                    &mut previous,
                );
                let active = self.activations[index].slice(s![..rows, ..]);
                mask_inactive(
                    previous.as_slice_mut().expect("contiguous"),
                    active.as_slice().expect("contiguous"),
                );
            }
        }
    }

    /// Returns the summed loss and the number of correct classifications of
    /// the first `rows` rows, after `forward`. Regression counts none correct.
    pub fn loss_and_correct(&self, output_kind: OutputActivation, rows: usize) -> (f64, usize) {
        let output = self.output(rows);
        let targets = self.targets.slice(s![..rows, ..]);
        let mut loss = 0.0;
        let mut correct = 0;
        for (p, t) in output.rows().into_iter().zip(targets.rows()) {
            let (row_loss, is_correct) =
                row_loss(output_kind, p.as_slice().unwrap(), t.as_slice().unwrap());
            loss += row_loss;
            correct += usize::from(is_correct);
        }
        (loss, correct)
    }
}

/// Returns one row's loss and whether its class was predicted right.
pub fn row_loss(kind: OutputActivation, prediction: &[f32], target: &[f32]) -> (f64, bool) {
    match kind {
        OutputActivation::Sigmoid => {
            let p = (prediction[0] as f64).clamp(PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON);
            let t = target[0] as f64;
            let loss = -(t * p.ln() + (1.0 - t) * (1.0 - p).ln());
            (loss, (p >= 0.5) == (t >= 0.5))
        }
        OutputActivation::Softmax => {
            let class = argmax(target);
            let p = (prediction[class] as f64).max(PROBABILITY_EPSILON);
            (-p.ln(), argmax(prediction) == class)
        }
        OutputActivation::Identity => {
            let error = prediction[0] as f64 - target[0] as f64;
            (0.5 * error * error, false)
        }
    }
}

/// Returns the index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

fn contiguous(array: &mut Array2<f32>) -> &mut [f32] {
    array.as_slice_mut().expect("contiguous buffer")
}

fn add_bias(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

fn add_bias_relu(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = (*v + b).max(0.0);
        }
    }
}

fn apply_output(kind: OutputActivation, values: &mut [f32], width: usize) {
    match kind {
        OutputActivation::Identity => {}
        OutputActivation::Sigmoid => {
            for v in values.iter_mut() {
                *v = 1.0 / (1.0 + (-*v).exp());
            }
        }
        OutputActivation::Softmax => {
            for row in values.chunks_exact_mut(width) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                for v in row.iter_mut() {
                    *v /= sum;
                }
            }
        }
    }
}

/// Sets `out` to the column sums of `matrix`, which must be contiguous.
fn sum_rows(matrix: ArrayView2<f32>, out: &mut [f32]) {
    out.fill(0.0);
    let values = matrix.to_slice().expect("row prefix is contiguous");
    for row in values.chunks_exact(out.len()) {
        for (sum, v) in out.iter_mut().zip(row) {
            *sum += v;
        }
    }
}

/// Zeroes the gradient where the ReLU output was zero (its derivative).
/// Written as a select, not a branch, so that it vectorizes.
fn mask_inactive(gradient: &mut [f32], activation: &[f32]) {
    for (g, &a) in gradient.iter_mut().zip(activation) {
        *g = if a > 0.0 { *g } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Summed loss of `rows` rows after a forward pass, and which hidden
    /// ReLU units were active.
    fn total_loss(net: &Mlp, workspace: &mut Workspace, rows: usize) -> (f64, Vec<bool>) {
        workspace.forward(net, rows);
        let hidden = &workspace.activations[1..net.layers.len()];
        let active = hidden
            .iter()
            .flat_map(|a| {
                a.slice(s![..rows, ..])
                    .iter()
                    .map(|&v| v > 0.0)
                    .collect::<Vec<_>>()
            })
            .collect();
        (workspace.loss_and_correct(net.output, rows).0, active)
    }

    /// Compares every analytic gradient entry with a central finite
    /// difference of the summed loss.
    #[allow(clippy::needless_range_loop)]
    fn check_gradients(output: OutputActivation, outputs: usize) {
        let mut rng = StdRng::seed_from_u64(7);
        let mut net = Mlp::new_he(&[3, 5, 4, outputs], output, &mut rng);
        for layer in &mut net.layers {
            layer
                .bias
                .iter_mut()
                .for_each(|b| *b = rng.gen_range(-0.3..0.3));
        }
        let rows = 6;
        let mut workspace = Workspace::new(&net, rows);
        workspace
            .input_mut(rows)
            .mapv_inplace(|_| rng.gen_range(-1.0..1.0));
        for (row, mut target) in workspace
            .targets_mut(rows)
            .rows_mut()
            .into_iter()
            .enumerate()
        {
            match output {
                OutputActivation::Sigmoid => target[0] = (row % 2) as f32,
                OutputActivation::Softmax => target[row % outputs] = 1.0,
                OutputActivation::Identity => target[0] = rng.gen_range(-1.0..1.0),
            }
        }

        let (_, base_active) = total_loss(&net, &mut workspace, rows);
        workspace.backward(&net, rows);
        let analytic = workspace.gradients.clone();

        let step = 1e-3f32;
        let mut checked = 0;
        for layer in 0..net.layers.len() {
            for part in 0..2 {
                let count = net.layers[layer].parameters()[part].len();
                for index in 0..count {
                    let original = net.layers[layer].parameters()[part][index];
                    net.layers[layer].parameters_mut()[part][index] = original + step;
                    let (plus, plus_active) = total_loss(&net, &mut workspace, rows);
                    net.layers[layer].parameters_mut()[part][index] = original - step;
                    let (minus, minus_active) = total_loss(&net, &mut workspace, rows);
                    net.layers[layer].parameters_mut()[part][index] = original;
                    if plus_active != base_active || minus_active != base_active {
                        // A ReLU kink lies inside the step, where the loss
                        // has no derivative to compare with.
                        continue;
                    }

                    let numeric = (plus - minus) / (2.0 * step as f64);
                    let exact = analytic[layer].parameters()[part][index] as f64;
                    let tolerance = 2e-2 * (1.0 + exact.abs());
                    assert!(
                        (numeric - exact).abs() < tolerance,
                        "{output:?} layer {layer} part {part} index {index}: analytic {exact}, numeric {numeric}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "only {checked} parameters checked");
    }

    #[test]
    fn gradient_matches_finite_differences_sigmoid() {
        check_gradients(OutputActivation::Sigmoid, 1);
    }

    #[test]
    fn gradient_matches_finite_differences_softmax() {
        check_gradients(OutputActivation::Softmax, 3);
    }

    #[test]
    fn gradient_matches_finite_differences_identity() {
        check_gradients(OutputActivation::Identity, 1);
    }

    #[test]
    fn chunked_gradients_sum_to_full_batch() {
        let mut rng = StdRng::seed_from_u64(3);
        let net = Mlp::new_he(&[4, 8, 3], OutputActivation::Softmax, &mut rng);
        let rows = 10;
        let inputs: Vec<f32> = (0..rows * 4).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let targets: Vec<f32> = (0..rows * 3)
            .map(|i| f32::from(i % 3 == (i / 3) % 3))
            .collect();
        let all: Vec<u32> = (0..rows as u32).collect();

        let mut full = Workspace::new(&net, rows);
        full.load_rows(&inputs, &targets, &all);
        full.forward(&net, rows);
        full.backward(&net, rows);

        let mut summed = net.zeros_like();
        for part in all.chunks(4) {
            let mut chunk = Workspace::new(&net, 4);
            chunk.load_rows(&inputs, &targets, part);
            chunk.forward(&net, part.len());
            chunk.backward(&net, part.len());
            for (sum, layer) in summed.iter_mut().zip(&chunk.gradients) {
                sum.weights += &layer.weights;
                sum.bias += &layer.bias;
            }
        }
        for (sum, layer) in summed.iter().zip(&full.gradients) {
            let difference = (&sum.weights - &layer.weights).mapv(f32::abs).sum();
            assert!(difference < 1e-4, "weight gradients differ by {difference}");
            let difference = (&sum.bias - &layer.bias).mapv(f32::abs).sum();
            assert!(difference < 1e-4, "bias gradients differ by {difference}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut rng = StdRng::seed_from_u64(5);
        let net = Mlp::new_he(&[2, 6, 4], OutputActivation::Softmax, &mut rng);
        let inputs = ndarray::arr2(&[[0.1f32, -0.4], [100.0, 50.0]]);
        let outputs = net.predict(inputs.view());
        for row in outputs.rows() {
            assert!(
                (row.sum() - 1.0).abs() < 1e-5,
                "row {row} does not sum to 1"
            );
            assert!(row.iter().all(|p| p.is_finite()), "row {row} is not finite");
        }
    }
}
