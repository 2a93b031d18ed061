//! Command-line interface: argument definitions and one function per
//! subcommand. `main` calls `run` and maps its error to an exit code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::dataset::{load_csv, summarize_lines, Dataset};
use crate::error::{Error, Result};
use crate::generate::{write_dataset, DatasetKind};
use crate::labels::{encode_targets, TaskChoice};
use crate::model::Model;
use crate::model_file;
use crate::optimizer::OptimizerKind;
use crate::store::{load_model, model_path, parse_vector, validate_model_id};
use crate::train::{default_threads, train, EpochReport, TrainOptions};

/// Trains small neural networks on CSV files and predicts with them.
#[derive(Debug, Parser)]
#[command(name = "ai-core", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model on a CSV file (last column is the label) and save it as
    /// <models-dir>/<model-id>.model.
    Train(TrainArgs),
    /// Parse and validate a CSV file without training; print its summary.
    Check(CheckArgs),
    /// Predict one input vector with a saved model; prints the output vector
    /// as a JSON array.
    Predict(PredictArgs),
    /// Print a model's layers, normalization, labels and training metadata.
    Info(InfoArgs),
    /// Write a synthetic dataset as CSV and print its path.
    Generate(GenerateArgs),
    /// Serve predictions: one JSON request per line on stdin, one response
    /// line per request on stdout.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ModelsDir {
    /// Directory of model files (<id>.model).
    #[arg(long, env = "AI_CORE_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// CSV file to train on.
    pub csv: PathBuf,
    /// Model id: letters, digits, '-', '_' and '.', not starting with '.',
    /// at most 128 characters.
    pub model_id: String,
    #[command(flatten)]
    pub models_dir: ModelsDir,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Number of passes over the training rows [default: 100, or more for
    /// tiny datasets so that training makes at least 2000 optimizer steps].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Rows per mini-batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Step size of the optimizer [default: 0.005 for adam, 0.1 for sgd].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Hidden layer sizes in neurons, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,32")]
    pub hidden: Vec<usize>,
    /// Seed of weight initialization, validation split and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Training threads [default: number of cores]. The same seed and thread
    /// count give the same weights. The file also stores the training date,
    /// so set SOURCE_DATE_EPOCH (Unix seconds) to get the same file.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Fraction of rows held out for validation and early stopping, 0 to
    /// under 1 [default: 0.1 with 50 rows or more, else 0].
    #[arg(long)]
    pub validation: Option<f64>,
    /// Epochs without a lower validation loss before training stops. 0
    /// disables early stopping; the weights with the lowest validation loss
    /// are restored either way.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Task to learn. auto picks classes for text labels and for at most 20
    /// distinct integer labels, and regression otherwise.
    #[arg(long, value_enum, default_value_t = TaskChoice::Auto)]
    pub task: TaskChoice,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// CSV file to check.
    pub csv: PathBuf,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Task to check the labels for (see `train --task`).
    #[arg(long, value_enum, default_value_t = TaskChoice::Auto)]
    pub task: TaskChoice,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model id.
    pub model_id: String,
    /// Input values, as 0.5,0.1 or [0.5, 0.1], in the CSV's feature units.
    #[arg(allow_hyphen_values = true)]
    pub vector: String,
    #[command(flatten)]
    pub models_dir: ModelsDir,
    /// Print {"success", "prediction", "label", "value"} instead of the bare
    /// output array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Model file path, or model id looked up in --models-dir.
    pub model: String,
    #[command(flatten)]
    pub models_dir: ModelsDir,
    /// Print the header as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Dataset to write.
    #[arg(value_enum)]
    pub dataset: DatasetKind,
    /// Directory to write the CSV file into.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Seed of the random values.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of data rows [default: the dataset's own count; xor always
    /// has 4].
    #[arg(long)]
    pub rows: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub models_dir: ModelsDir,
}

impl Cli {
    /// Returns true when the subcommand was asked for JSON output.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Train(a) => a.json,
            Command::Check(a) => a.json,
            Command::Predict(a) => a.json,
            Command::Info(a) => a.json,
            Command::Generate(_) | Command::Serve(_) => false,
        }
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => run_train(args),
        Command::Check(args) => run_check(args),
        Command::Predict(args) => run_predict(args),
        Command::Info(args) => run_info(args),
        Command::Generate(args) => run_generate(args),
        Command::Serve(args) => run_serve(args),
    }
}

/// Prints `value` as one line on stdout; a closed stdout is ignored.
fn print_line(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("cannot write to stdout", e))
        }
        _ => Ok(()),
    }
}

fn print_json(value: &Value) -> Result<()> {
    print_line(&value.to_string())
}

/// Prints a warning naming the skipped rows, if any.
/// Builds the `check --json` object, also returned by `serve` for `check_csv` requests.
pub fn check_summary(dataset: &Dataset, targets: &crate::labels::Targets) -> Value {
    let classes = targets.task.is_classification().then_some(&targets.classes);
    json!({
        "success": true,
        "rows": dataset.rows(),
        "features": dataset.feature_count(),
        "featureNames": dataset.feature_names,
        "label": dataset.label_name,
        "header": dataset.has_header,
        "separator": (dataset.separator as char).to_string(),
        "task": targets.task.name(),
        "classes": classes,
        "skippedRows": dataset.skipped_lines.len(),
        "skippedLines": dataset.skipped_lines,
    })
}

fn warn_skipped(dataset: &Dataset) {
    if dataset.skipped_lines.is_empty() {
        return;
    }
    eprintln!(
        "warning: skipped {} rows (lines {}); first: {}",
        dataset.skipped_lines.len(),
        summarize_lines(&dataset.skipped_lines),
        dataset
            .skip_reasons
            .first()
            .map(String::as_str)
            .unwrap_or("")
    );
}

fn run_train(args: TrainArgs) -> Result<()> {
    let started = Instant::now();
    validate_model_id(&args.model_id)?;
    let path = model_path(&args.models_dir.models_dir, &args.model_id)?;
    let dataset = load_csv(&args.csv)?;
    warn_skipped(&dataset);

    let options = TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        optimizer: args.optimizer,
        hidden: args.hidden,
        seed: args.seed,
        threads: args.threads.unwrap_or_else(default_threads),
        validation: args.validation,
        patience: args.patience,
        task: args.task,
        date_unix: crate::timestamp::training_time_unix(),
    };
    let outcome = train(&dataset, &options, &mut print_epoch)?;
    model_file::save_atomic(&outcome.model, &path)?;

    let duration_ms = started.elapsed().as_millis() as u64;
    let summary = train_summary(&args.model_id, &path, &dataset, &outcome.model, duration_ms);
    if args.json {
        print_json(&summary)
    } else {
        print_line(&human_train_summary(&summary))
    }
}

fn print_epoch(report: &EpochReport) {
    let mut line = format!(
        "epoch {}/{} loss {:.4}",
        report.epoch, report.epochs, report.loss
    );
    if let Some(accuracy) = report.accuracy {
        line.push_str(&format!(" accuracy {accuracy:.4}"));
    }
    if let Some(loss) = report.validation_loss {
        line.push_str(&format!(" val_loss {loss:.4}"));
    }
    if let Some(accuracy) = report.validation_accuracy {
        line.push_str(&format!(" val_accuracy {accuracy:.4}"));
    }
    line.push_str(&format!(
        " time {:.1} ms",
        report.duration.as_secs_f64() * 1e3
    ));
    eprintln!("{line}");
}

/// Builds the JSON result of `train`.
fn train_summary(
    id: &str,
    path: &Path,
    dataset: &Dataset,
    model: &Model,
    duration_ms: u64,
) -> Value {
    let header = &model.header;
    let info = &header.training;
    json!({
        "success": true,
        "modelId": id,
        "file": path.display().to_string(),
        "task": header.task.name(),
        "features": model.input_count(),
        "outputs": model.network.output_count(),
        "classes": header.classes,
        "samples": info.dataset_rows,
        "trainingSamples": info.training_rows,
        "validationSamples": info.validation_rows,
        "skippedRows": dataset.skipped_lines.len(),
        "skippedLines": dataset.skipped_lines,
        "epochs": info.epochs,
        "accuracy": info.accuracy,
        "loss": info.loss,
        "validationAccuracy": info.validation_accuracy,
        "validationLoss": info.validation_loss,
        "r2": info.r2,
        "rmse": info.rmse,
        "seed": info.seed,
        "threads": info.threads,
        "durationMs": duration_ms,
    })
}

fn human_train_summary(summary: &Value) -> String {
    let mut text = format!(
        "saved {} ({} task, {} features, {} rows, {} epochs",
        summary["file"].as_str().unwrap_or(""),
        summary["task"].as_str().unwrap_or(""),
        summary["features"],
        summary["samples"],
        summary["epochs"]
    );
    for (key, name) in [
        ("accuracy", "accuracy"),
        ("validationAccuracy", "validation accuracy"),
        ("r2", "r2"),
        ("rmse", "rmse"),
    ] {
        if let Some(value) = summary[key].as_f64() {
            text.push_str(&format!(", {name} {value:.4}"));
        }
    }
    text.push(')');
    text
}

fn run_check(args: CheckArgs) -> Result<()> {
    let dataset = load_csv(&args.csv)?;
    let targets = encode_targets(&dataset.labels, args.task)?;
    warn_skipped(&dataset);

    let classes = targets.task.is_classification().then_some(&targets.classes);
    let summary = check_summary(&dataset, &targets);
    if args.json {
        return print_json(&summary);
    }
    print_line(&format!(
        "{}: {} rows, {} features, task {}, {} rows skipped{}",
        args.csv.display(),
        dataset.rows(),
        dataset.feature_count(),
        targets.task.name(),
        dataset.skipped_lines.len(),
        classes
            .map(|c| format!(", classes {}", c.join(" | ")))
            .unwrap_or_default()
    ))
}

fn run_predict(args: PredictArgs) -> Result<()> {
    validate_model_id(&args.model_id)?;
    let vector = parse_vector(&args.vector)?;
    let model = load_model(&args.models_dir.models_dir, &args.model_id)?;
    let prediction = model
        .predict(&args.model_id, &[vector])?
        .pop()
        .expect("one prediction per input row");

    if args.json {
        print_json(&json!({
            "success": true,
            "prediction": prediction.outputs,
            "label": prediction.label,
            "value": prediction.value,
        }))
    } else {
        print_json(&json!(prediction.outputs))
    }
}

/// Opens `model` as a file path when such a file exists or it contains a
/// path separator, else as an id in the models directory.
fn run_info(args: InfoArgs) -> Result<()> {
    let as_path = Path::new(&args.model);
    let model = if as_path.is_file() || args.model.contains(std::path::MAIN_SEPARATOR) {
        model_file::load(as_path, &args.model)?
    } else {
        load_model(&args.models_dir.models_dir, &args.model)?
    };

    if args.json {
        let mut value = serde_json::to_value(&model.header).expect("header serializes");
        value["success"] = json!(true);
        value["formatVersion"] = json!(model_file::FORMAT_VERSION);
        return print_json(&value);
    }
    print_line(&describe_model(&model))
}

/// Formats a model's header for people.
fn describe_model(model: &Model) -> String {
    let header = &model.header;
    let info = &header.training;
    let sizes: Vec<String> = header.layer_sizes.iter().map(|s| s.to_string()).collect();
    let mut lines = vec![
        format!("format version: {}", model_file::FORMAT_VERSION),
        format!("task: {}", header.task.name()),
        format!("layers: {}", sizes.join(" -> ")),
        format!(
            "activations: {} (hidden), {:?} (output)",
            header.hidden_activation, header.output_activation
        ),
        format!("features: {}", header.feature_names.join(", ")),
        format!("label: {}", header.label_name),
    ];

    for (i, name) in header.feature_names.iter().enumerate() {
        lines.push(format!(
            "  normalization {name}: min {} max {}",
            header.normalization.min[i], header.normalization.max[i]
        ));
    }
    if let Some(scaler) = &header.target_normalization {
        lines.push(format!(
            "  label range: min {} max {}",
            scaler.min[0], scaler.max[0]
        ));
    }
    if let Some(classes) = &header.classes {
        lines.push(format!("classes: {}", classes.join(" | ")));
    }

    lines.push(format!(
        "trained: {} epochs ({} requested), optimizer {} rate {}, batch {}, seed {}, threads {}, date {}",
        info.epochs, info.epochs_requested, info.optimizer, info.learning_rate, info.batch_size, info.seed, info.threads, info.date
    ));
    lines.push(format!(
        "rows: {} used ({} training, {} validation), {} skipped",
        info.dataset_rows, info.training_rows, info.validation_rows, info.skipped_rows
    ));

    let metrics = [
        ("loss", Some(info.loss)),
        ("accuracy", info.accuracy),
        ("validation loss", info.validation_loss),
        ("validation accuracy", info.validation_accuracy),
        ("r2", info.r2),
        ("rmse", info.rmse),
    ];
    for (name, value) in metrics {
        if let Some(value) = value {
            lines.push(format!("{name}: {value:.6}"));
        }
    }
    lines.join("\n")
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    let path = write_dataset(args.dataset, &args.out, args.seed, args.rows)?;
    print_line(&path.display().to_string())
}

fn run_serve(args: ServeArgs) -> Result<()> {
    let dir = &args.models_dir.models_dir;
    log::info!("serving predictions for models in {}", dir.display());
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    crate::serve::serve(dir, stdin, stdout).map_err(|e| Error::io("serve failed", e))?;
    log::info!("input closed; serve stopped");
    Ok(())
}
