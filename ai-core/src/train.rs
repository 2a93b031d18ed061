//! The training loop: validation split, normalization, data-parallel
//! mini-batch gradient descent, early stopping and final metrics.
//!
//! Parallelism is synchronous and reproducible. Each batch is cut into one
//! fixed chunk per thread, and each thread computes its chunk's summed
//! gradient into its own preallocated workspace. The chunk gradients are
//! added in chunk order, and the optimizer applies their mean once. The same
//! seed and thread count therefore give the same weights bit for bit.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::labels::{encode_targets, Targets, Task, TaskChoice};
use crate::model::{Model, ModelHeader, TrainingInfo};
use crate::model_file::{MAX_LAYERS, MAX_LAYER_SIZE, MAX_PARAMETERS};
use crate::network::{Layer, Mlp, OutputActivation, Workspace};
use crate::normalize::MinMax;
use crate::optimizer::{Optimizer, OptimizerKind, StepRule};

/// Epochs when `--epochs` is not given, unless more are needed to reach
/// `MIN_DEFAULT_STEPS`.
pub const DEFAULT_EPOCHS: usize = 100;
/// Optimizer steps that the default epoch count guarantees, so that tiny
/// datasets (one batch per epoch) still train long enough.
pub const MIN_DEFAULT_STEPS: usize = 2000;
/// Default validation fraction for datasets of at least
/// `MIN_ROWS_FOR_VALIDATION` rows; smaller ones get no validation split.
pub const DEFAULT_VALIDATION: f64 = 0.1;
pub const MIN_ROWS_FOR_VALIDATION: usize = 50;
/// Rows per workspace used for evaluation passes.
const EVALUATION_ROWS: usize = 256;

/// Settings of one training run.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Epochs to run; `None` picks a default from the dataset size.
    pub epochs: Option<usize>,
    pub batch_size: usize,
    /// `None` uses the optimizer's default.
    pub learning_rate: Option<f64>,
    pub optimizer: OptimizerKind,
    pub hidden: Vec<usize>,
    pub seed: u64,
    pub threads: usize,
    /// Fraction of rows held out for validation; `None` picks the default.
    pub validation: Option<f64>,
    /// Epochs without a better validation loss before stopping; 0 never stops
    /// early.
    pub patience: usize,
    pub task: TaskChoice,
    /// Training date as Unix seconds, stored in the model.
    pub date_unix: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: None,
            batch_size: 32,
            learning_rate: None,
            optimizer: OptimizerKind::default(),
            hidden: vec![64, 32],
            seed: 42,
            threads: default_threads(),
            validation: None,
            patience: 10,
            task: TaskChoice::Auto,
            date_unix: 0,
        }
    }
}

/// Returns the number of cores, or 1 when it cannot be read.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Metrics of one finished epoch.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    pub epochs: usize,
    /// Mean loss of the training batches during the epoch.
    pub loss: f64,
    /// Accuracy of the training batches during the epoch, classifiers only.
    pub accuracy: Option<f64>,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub duration: Duration,
}

/// A trained model and how long the optimization took.
pub struct TrainOutcome {
    pub model: Model,
    /// Time spent in the epoch loop, excluding loading and final metrics.
    pub training_time: Duration,
}

/// Normalized rows ready for the network: row-major `f32` inputs and targets.
struct Matrix {
    inputs: Vec<f32>,
    targets: Vec<f32>,
    rows: usize,
}

/// Loss sum and correct count of a set of rows.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    loss: f64,
    correct: usize,
}

/// One thread's buffers and the totals of its last chunk.
struct Worker {
    workspace: Workspace,
    totals: Totals,
}

/// Trains a model on `dataset`; calls `on_epoch` after every epoch.
pub fn train(
    dataset: &Dataset,
    options: &TrainOptions,
    on_epoch: &mut (dyn FnMut(&EpochReport) + Send),
) -> Result<TrainOutcome> {
    validate_options(options)?;
    let targets = encode_targets(&dataset.labels, options.task)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let prepared = prepare_data(dataset, &targets, options, &mut rng);

    let output = output_activation(targets.task);
    let mut sizes = vec![dataset.feature_count()];
    sizes.extend(&options.hidden);
    sizes.push(targets.output_count());
    check_model_size(&sizes)?;
    let network = Mlp::new_he(&sizes, output, &mut rng);

    let batches_per_epoch = prepared.training.rows.div_ceil(options.batch_size);
    let epochs = options
        .epochs
        .unwrap_or_else(|| default_epochs(batches_per_epoch));
    let learning_rate = options
        .learning_rate
        .unwrap_or_else(|| options.optimizer.default_learning_rate());

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| {
            Error::TrainingFailed(format!("failed to start {} threads: {e}", options.threads))
        })?;
    let mut trainer = Trainer::new(network, options, learning_rate, epochs, rng);

    let started = Instant::now();
    let (training, validation) = (&prepared.training, &prepared.validation);
    pool.install(|| trainer.run(training, validation, on_epoch))?;
    let training_time = started.elapsed();

    let final_training = pool.install(|| trainer.evaluate(training));
    let final_validation =
        (validation.rows > 0).then(|| pool.install(|| trainer.evaluate(validation)));
    let metrics = FinalMetrics {
        epochs_run: trainer.epochs_run,
        epochs_requested: epochs,
        learning_rate,
        training: final_training,
        validation: final_validation,
    };
    let header = build_header(dataset, &targets, options, prepared, sizes, &metrics);

    let model = Model {
        header,
        network: trainer.network,
    };
    if !model.network.is_finite() {
        return Err(Error::TrainingFailed(
            "training produced non-finite weights; lower --learning-rate".to_string(),
        ));
    }
    Ok(TrainOutcome {
        model,
        training_time,
    })
}

/// Training and validation matrices with the scaling fitted on the
/// training rows.
struct PreparedData {
    training_rows: Vec<usize>,
    training: Matrix,
    validation: Matrix,
    normalization: MinMax,
    target_normalization: Option<MinMax>,
}

/// Splits the rows, fits the scaling on the training part and builds both
/// matrices.
fn prepare_data(
    dataset: &Dataset,
    targets: &Targets,
    options: &TrainOptions,
    rng: &mut StdRng,
) -> PreparedData {
    let (training_rows, validation_rows) = split_rows(dataset.rows(), options, rng);
    let width = dataset.feature_count();
    let normalization = MinMax::fit(&dataset.features, width, training_rows.iter().copied());
    let target_normalization = (targets.task == Task::Regression)
        .then(|| MinMax::fit(&targets.values, 1, training_rows.iter().copied()));
    let prepare = |rows: &[usize]| {
        build_matrix(
            dataset,
            targets,
            &normalization,
            target_normalization.as_ref(),
            rows,
        )
    };
    let training = prepare(&training_rows);
    let validation = prepare(&validation_rows);
    PreparedData {
        training_rows,
        training,
        validation,
        normalization,
        target_normalization,
    }
}

/// Results of the epoch loop and of the final evaluation passes.
struct FinalMetrics {
    epochs_run: usize,
    epochs_requested: usize,
    learning_rate: f64,
    training: Totals,
    validation: Option<Totals>,
}

/// Builds the model header: layout, scaling, labels and training metadata.
fn build_header(
    dataset: &Dataset,
    targets: &Targets,
    options: &TrainOptions,
    prepared: PreparedData,
    sizes: Vec<usize>,
    metrics: &FinalMetrics,
) -> ModelHeader {
    let training_count = prepared.training.rows as f64;
    let validation_count = prepared.validation.rows as f64;
    let classifier = targets.task.is_classification();
    let info = TrainingInfo {
        date: crate::timestamp::format_rfc3339(options.date_unix),
        epochs: metrics.epochs_run,
        epochs_requested: metrics.epochs_requested,
        optimizer: options.optimizer.name().to_string(),
        learning_rate: metrics.learning_rate,
        batch_size: options.batch_size,
        seed: options.seed,
        threads: options.threads,
        dataset_rows: dataset.rows(),
        training_rows: prepared.training.rows,
        validation_rows: prepared.validation.rows,
        skipped_rows: dataset.skipped_lines.len(),
        loss: metrics.training.loss / training_count,
        accuracy: classifier.then(|| metrics.training.correct as f64 / training_count),
        validation_loss: metrics.validation.map(|t| t.loss / validation_count),
        validation_accuracy: metrics
            .validation
            .filter(|_| classifier)
            .map(|t| t.correct as f64 / validation_count),
        r2: None,
        rmse: None,
    };

    let mut header = ModelHeader {
        task: targets.task,
        layer_sizes: sizes,
        hidden_activation: "relu".to_string(),
        output_activation: output_activation(targets.task),
        feature_names: dataset.feature_names.clone(),
        label_name: dataset.label_name.clone(),
        normalization: prepared.normalization,
        target_normalization: prepared.target_normalization,
        classes: classifier.then(|| targets.classes.clone()),
        training: info,
    };
    if targets.task == Task::Regression {
        let rows = &prepared.training_rows;
        add_regression_metrics(&mut header, targets, rows, metrics.training.loss);
    }
    header
}

fn validate_options(options: &TrainOptions) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidPayload(message));
    if options.batch_size == 0 {
        return invalid("--batch-size must be at least 1".to_string());
    }
    if options.threads == 0 {
        return invalid("--threads must be at least 1".to_string());
    }
    if options.epochs == Some(0) {
        return invalid("--epochs must be at least 1".to_string());
    }
    if options.hidden.contains(&0) {
        return invalid("--hidden sizes must be at least 1".to_string());
    }
    if let Some(rate) = options.learning_rate {
        if !(rate.is_finite() && rate > 0.0) {
            return invalid(format!(
                "--learning-rate must be a positive number, got {rate}"
            ));
        }
    }
    if let Some(fraction) = options.validation {
        if !(0.0..1.0).contains(&fraction) {
            return invalid(format!("--validation must be in [0, 1), got {fraction}"));
        }
    }
    Ok(())
}

/// Rejects layer sizes that the model file format could not load back.
fn check_model_size(sizes: &[usize]) -> Result<()> {
    let inputs = sizes[0];
    if inputs > MAX_LAYER_SIZE {
        return Err(Error::InvalidCsv(format!(
            "the file has {inputs} feature columns, more than the maximum {MAX_LAYER_SIZE}"
        )));
    }
    if sizes.len() > MAX_LAYERS + 1 {
        return Err(Error::InvalidPayload(format!(
            "{} hidden layers exceed the maximum {}",
            sizes.len() - 2,
            MAX_LAYERS - 1
        )));
    }
    if let Some(&size) = sizes[1..].iter().find(|&&n| n > MAX_LAYER_SIZE) {
        return Err(Error::InvalidPayload(format!(
            "layer size {size} exceeds the maximum {MAX_LAYER_SIZE}; lower --hidden or use fewer classes"
        )));
    }
    let parameters: usize = sizes.windows(2).map(|p| p[0] * p[1] + p[1]).sum();
    if parameters > MAX_PARAMETERS {
        return Err(Error::InvalidPayload(format!(
            "the network would have {parameters} parameters, more than the maximum {MAX_PARAMETERS}; lower --hidden"
        )));
    }
    Ok(())
}

/// Returns the epoch count used when none is given: `DEFAULT_EPOCHS`, or more
/// when that many epochs would make fewer than `MIN_DEFAULT_STEPS` steps.
pub fn default_epochs(batches_per_epoch: usize) -> usize {
    DEFAULT_EPOCHS.max(MIN_DEFAULT_STEPS.div_ceil(batches_per_epoch.max(1)))
}

fn output_activation(task: Task) -> OutputActivation {
    match task {
        Task::Binary => OutputActivation::Sigmoid,
        Task::Multiclass => OutputActivation::Softmax,
        Task::Regression => OutputActivation::Identity,
    }
}

/// Shuffles row indices and holds out the validation fraction; the
/// training part keeps at least one row.
fn split_rows(rows: usize, options: &TrainOptions, rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let fraction = options
        .validation
        .unwrap_or(if rows >= MIN_ROWS_FOR_VALIDATION {
            DEFAULT_VALIDATION
        } else {
            0.0
        });
    let mut order: Vec<usize> = (0..rows).collect();
    order.shuffle(rng);
    let held_out = ((rows as f64 * fraction).round() as usize).min(rows - 1);
    let training = order.split_off(held_out);
    (training, order)
}

/// Scales the picked rows into `f32` network inputs and targets.
fn build_matrix(
    dataset: &Dataset,
    targets: &Targets,
    normalization: &MinMax,
    target_normalization: Option<&MinMax>,
    rows: &[usize],
) -> Matrix {
    let width = dataset.feature_count();
    let outputs = targets.output_count();
    let mut inputs = vec![0.0f32; rows.len() * width];
    let mut target_values = vec![0.0f32; rows.len() * outputs];

    for (slot, &row) in rows.iter().enumerate() {
        normalization.scale_row(
            dataset.row(row),
            &mut inputs[slot * width..(slot + 1) * width],
        );
        let target = &mut target_values[slot * outputs..(slot + 1) * outputs];
        match targets.task {
            Task::Binary => target[0] = targets.class_of_row[row] as f32,
            Task::Multiclass => target[targets.class_of_row[row] as usize] = 1.0,
            Task::Regression => {
                let scaler = target_normalization.expect("regression has a target scaler");
                target[0] = scaler.scale(0, targets.values[row]) as f32;
            }
        }
    }
    Matrix {
        inputs,
        targets: target_values,
        rows: rows.len(),
    }
}

/// Fills `r2` and `rmse` in label units from the summed half squared error
/// on scaled targets. Scaling is linear, so an error of 1 in scaled units is
/// `unit` in label units.
fn add_regression_metrics(
    header: &mut ModelHeader,
    targets: &Targets,
    rows: &[usize],
    loss_sum: f64,
) {
    let scaler = header
        .target_normalization
        .as_ref()
        .expect("regression scaler");
    let unit = scaler.unscale(0, 1.0) - scaler.unscale(0, 0.0);
    let squared_error = 2.0 * loss_sum * unit * unit;
    let count = rows.len() as f64;
    let mean = rows.iter().map(|&r| targets.values[r]).sum::<f64>() / count;
    let total: f64 = rows
        .iter()
        .map(|&r| (targets.values[r] - mean).powi(2))
        .sum();

    header.training.rmse = Some((squared_error / count).sqrt());
    header.training.r2 = Some(if total > 0.0 {
        1.0 - squared_error / total
    } else {
        0.0
    });
}

/// State of the epoch loop.
struct Trainer {
    network: Mlp,
    best: Mlp,
    optimizer: Optimizer,
    workers: Vec<Worker>,
    /// Rows per chunk: the batch size divided by the thread count, rounded up.
    // NOTE: at batch size 32, two threads trained Adam about half as fast as
    // one on the 2-core development VM; from batch size 512 they gained
    // about 30% (SGD about 50%).
    chunk_rows: usize,
    batch_size: usize,
    epochs: usize,
    patience: usize,
    epochs_run: usize,
    order: Vec<u32>,
    rng: StdRng,
}

impl Trainer {
    fn new(
        network: Mlp,
        options: &TrainOptions,
        learning_rate: f64,
        epochs: usize,
        rng: StdRng,
    ) -> Trainer {
        let chunk_rows = options.batch_size.div_ceil(options.threads);
        let capacity = chunk_rows.max(EVALUATION_ROWS);
        let workers = (0..options.threads)
            .map(|_| Worker {
                workspace: Workspace::new(&network, capacity),
                totals: Totals::default(),
            })
            .collect();
        Trainer {
            best: network.clone(),
            optimizer: Optimizer::new(options.optimizer, learning_rate, &network),
            network,
            workers,
            chunk_rows,
            batch_size: options.batch_size,
            epochs,
            patience: options.patience,
            epochs_run: 0,
            order: Vec::new(),
            rng,
        }
    }

    /// Runs the epochs; with validation rows, stops after `patience` epochs
    /// without improvement and restores the best weights.
    fn run(
        &mut self,
        training: &Matrix,
        validation: &Matrix,
        on_epoch: &mut (dyn FnMut(&EpochReport) + Send),
    ) -> Result<()> {
        self.order = (0..training.rows as u32).collect();
        let mut best_loss = f64::INFINITY;
        let mut best_epoch = 0;

        for epoch in 1..=self.epochs {
            let started = Instant::now();
            let totals = self.run_epoch(training);
            let loss = totals.loss / training.rows as f64;
            if !loss.is_finite() {
                return Err(Error::TrainingFailed(format!(
                    "loss became {loss} in epoch {epoch}; lower --learning-rate"
                )));
            }
            let checked = (validation.rows > 0).then(|| self.evaluate(validation));
            self.epochs_run = epoch;

            let classifier = self.network.output != OutputActivation::Identity;
            on_epoch(&EpochReport {
                epoch,
                epochs: self.epochs,
                loss,
                accuracy: classifier.then(|| totals.correct as f64 / training.rows as f64),
                validation_loss: checked.map(|t| t.loss / validation.rows as f64),
                validation_accuracy: checked
                    .filter(|_| classifier)
                    .map(|t| t.correct as f64 / validation.rows as f64),
                duration: started.elapsed(),
            });

            let Some(checked) = checked else { continue };
            let validation_loss = checked.loss / validation.rows as f64;
            if validation_loss < best_loss {
                best_loss = validation_loss;
                best_epoch = epoch;
                self.best.copy_from(&self.network);
            } else if self.patience > 0 && epoch - best_epoch >= self.patience {
                break;
            }
        }

        if validation.rows > 0 && best_epoch > 0 {
            self.network.copy_from(&self.best);
        }
        Ok(())
    }

    /// Shuffles the rows and runs one pass of mini-batches; returns the
    /// totals of the batches as they were trained.
    fn run_epoch(&mut self, training: &Matrix) -> Totals {
        self.order.shuffle(&mut self.rng);
        let mut totals = Totals::default();
        let order = std::mem::take(&mut self.order);
        for batch in order.chunks(self.batch_size) {
            let batch_totals = self.train_batch(training, batch);
            totals.loss += batch_totals.loss;
            totals.correct += batch_totals.correct;
        }
        self.order = order;
        totals
    }

    /// Computes chunk gradients in parallel, adds them in chunk order and
    /// applies one optimizer step with their mean.
    fn train_batch(&mut self, training: &Matrix, batch: &[u32]) -> Totals {
        let network = &self.network;
        let chunks = batch.len().div_ceil(self.chunk_rows);
        for_each_chunk(
            &mut self.workers[..chunks],
            batch,
            self.chunk_rows,
            &|worker, rows| {
                let workspace = &mut worker.workspace;
                workspace.load_rows(&training.inputs, &training.targets, rows);
                workspace.forward(network, rows.len());
                workspace.backward(network, rows.len());
                let (loss, correct) = workspace.loss_and_correct(network.output, rows.len());
                worker.totals = Totals { loss, correct };
            },
        );

        let (first, rest) = self.workers.split_at_mut(1);
        let others = &rest[..chunks - 1];
        let mut totals = first[0].totals;
        for worker in others {
            totals.loss += worker.totals.loss;
            totals.correct += worker.totals.correct;
        }

        let rule = self.optimizer.begin_step(1.0 / batch.len() as f32);
        let (firsts, seconds) = self.optimizer.moments_mut();
        let update = LayerUpdate {
            layers: &mut self.network.layers,
            sums: &mut first[0].workspace.gradients,
            firsts,
            seconds,
            offset: 0,
        };
        update.run(others, &rule, chunks > 1);
        totals
    }

    /// Returns the summed loss and correct count of all rows of `data`,
    /// computed in parallel pieces and added in a fixed order.
    fn evaluate(&mut self, data: &Matrix) -> Totals {
        let network = &self.network;
        let piece_rows = self.workers[0].workspace.capacity();
        let width = network.input_count();
        let outputs = network.output_count();
        let mut totals = Totals::default();
        let round_rows = piece_rows * self.workers.len();

        for round_start in (0..data.rows).step_by(round_rows) {
            let round_end = (round_start + round_rows).min(data.rows);
            let pieces = (round_end - round_start).div_ceil(piece_rows);
            self.workers[..pieces]
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, worker)| {
                    let start = round_start + i * piece_rows;
                    let rows = piece_rows.min(round_end - start);
                    let workspace = &mut worker.workspace;
                    workspace
                        .input_mut(rows)
                        .as_slice_mut()
                        .expect("contiguous")
                        .copy_from_slice(&data.inputs[start * width..(start + rows) * width]);
                    workspace
                        .targets_mut(rows)
                        .as_slice_mut()
                        .expect("contiguous")
                        .copy_from_slice(&data.targets[start * outputs..(start + rows) * outputs]);
                    workspace.forward(network, rows);
                    let (loss, correct) = workspace.loss_and_correct(network.output, rows);
                    worker.totals = Totals { loss, correct };
                });
            for worker in &self.workers[..pieces] {
                totals.loss += worker.totals.loss;
                totals.correct += worker.totals.correct;
            }
        }
        totals
    }
}

/// Layers still to update in one step, with their gradient sums and
/// optimizer moments; `offset` is the index of `layers[0]` in the network.
struct LayerUpdate<'a> {
    layers: &'a mut [Layer],
    sums: &'a mut [Layer],
    firsts: &'a mut [Layer],
    seconds: &'a mut [Layer],
    offset: usize,
}

impl LayerUpdate<'_> {
    /// Adds the other workers' gradients into `sums` in worker order and
    /// applies `rule`, one layer per task. With `parallel`, halves of the
    /// layers run under `rayon::join`, which also keeps the other pool
    /// threads busy between batches instead of letting them fall asleep.
    fn run(self, others: &[Worker], rule: &StepRule, parallel: bool) {
        if self.layers.len() == 1 || !parallel {
            for index in 0..self.layers.len() {
                let sum = &mut self.sums[index];
                for worker in others {
                    let gradient = &worker.workspace.gradients[self.offset + index];
                    sum.weights += &gradient.weights;
                    sum.bias += &gradient.bias;
                }
                rule.apply(
                    &mut self.layers[index],
                    sum,
                    &mut self.firsts[index],
                    &mut self.seconds[index],
                );
            }
            return;
        }

        let middle = self.layers.len() / 2;
        let (left, right) = self.split(middle);
        rayon::join(
            || left.run(others, rule, parallel),
            || right.run(others, rule, parallel),
        );
    }

    fn split(self, at: usize) -> (Self, Self) {
        let (layers_left, layers_right) = self.layers.split_at_mut(at);
        let (sums_left, sums_right) = self.sums.split_at_mut(at);
        let (firsts_left, firsts_right) = self.firsts.split_at_mut(at);
        let (seconds_left, seconds_right) = self.seconds.split_at_mut(at);
        let left = LayerUpdate {
            layers: layers_left,
            sums: sums_left,
            firsts: firsts_left,
            seconds: seconds_left,
            offset: self.offset,
        };
        let right = LayerUpdate {
            layers: layers_right,
            sums: sums_right,
            firsts: firsts_right,
            seconds: seconds_right,
            offset: self.offset + at,
        };
        (left, right)
    }
}

/// Runs `work` on worker `i` with the `i`-th `chunk_rows` rows of `rows`,
/// splitting the workers in halves with `rayon::join`. A join costs less
/// than a parallel iterator, which matters at one join per small batch.
fn for_each_chunk<F>(workers: &mut [Worker], rows: &[u32], chunk_rows: usize, work: &F)
where
    F: Fn(&mut Worker, &[u32]) + Sync,
{
    if workers.len() == 1 {
        work(&mut workers[0], rows);
        return;
    }
    let half = workers.len() / 2;
    let (left_workers, right_workers) = workers.split_at_mut(half);
    let (left_rows, right_rows) = rows.split_at((half * chunk_rows).min(rows.len()));
    rayon::join(
        || for_each_chunk(left_workers, left_rows, chunk_rows, work),
        || for_each_chunk(right_workers, right_rows, chunk_rows, work),
    );
}
