//! One function per subcommand: read input, call the cluster, print the result.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::args::{Cli, Command, PredictArgs, StressArgs, TrainArgs, UploadArgs, WebArgs};
use super::progress::Spinner;
use super::{client_config, output, seconds, CliError, Exit};
use crate::net::Client;
use crate::stress::{self, StressConfig, StressError};
use crate::wire::{self, TrainOptions};

pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    let config = client_config(&cli.global)?;
    let client = Client::new(config)?;
    let json = cli.global.json;

    match cli.command {
        Command::Train(args) => train(&client, args, json).await,
        Command::Predict(args) => predict(&client, args, json).await,
        Command::Models => models(&client, json).await,
        Command::Status => status(&client, json).await,
        Command::Upload(args) => upload(&client, args, json).await,
        Command::Stress(args) => run_stress(&client, args, json).await,
        Command::Web(args) => web(client, args).await,
    }
}

async fn train(client: &Client, args: TrainArgs, json: bool) -> Result<Exit, CliError> {
    let csv = read_file(&args.file)?;
    let options = TrainOptions {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        optimizer: args.optimizer,
        hidden: args.hidden,
        seed: args.seed,
        task: args.task,
        validation: args.validation,
    };

    let spinner = Spinner::start(format!("training {} on {}", args.model, args.file.display()));
    let result = client.train(&args.model, &csv, &options).await;
    spinner.finish();

    let result = result?;
    if json {
        print_json(&result)?;
    } else {
        print_line(&output::train_text(&result))?;
    }
    Ok(Exit::Ok)
}

async fn predict(client: &Client, args: PredictArgs, json: bool) -> Result<Exit, CliError> {
    let input = wire::parse_vector_text(&args.vector).map_err(|e| CliError::usage(format!("{e}; pass numbers such as 0.5,0.1")))?;
    let result = client.predict(&args.model, &input).await?;
    if json {
        print_json(&result)?;
    } else {
        print_line(&output::predict_text(&result))?;
    }
    Ok(Exit::Ok)
}

async fn models(client: &Client, json: bool) -> Result<Exit, CliError> {
    let models = client.list_models().await?;
    if json {
        print_json(&models)?;
    } else {
        print_text(&output::models_table(&models))?;
    }
    Ok(Exit::Ok)
}

/// Prints every node's status and exits 3 when no node responded.
async fn status(client: &Client, json: bool) -> Result<Exit, CliError> {
    let statuses = client.status_all().await;
    if json {
        let rows: Vec<output::StatusRow> = statuses.iter().map(output::StatusRow::from).collect();
        print_json(&rows)?;
    } else {
        print_text(&output::status_table(&statuses))?;
    }
    if statuses.iter().all(|(_, result)| result.is_err()) {
        return Err(CliError {
            exit: Exit::Unreachable,
            message: "no node responded; start the cluster (make cluster) or pass its addresses with --nodes".into(),
        });
    }
    Ok(Exit::Ok)
}

async fn upload(client: &Client, args: UploadArgs, json: bool) -> Result<Exit, CliError> {
    let csv = read_file(&args.file)?;
    let name = match args.name {
        Some(name) => name,
        None => default_dataset_name(&args.file)?,
    };
    let result = client.upload_dataset(&name, &csv).await?;
    if json {
        print_json(&result)?;
    } else {
        let index = result.log_index.map(|i| format!(" at log index {i}")).unwrap_or_default();
        print_line(&format!("dataset {} stored{index}", result.dataset))?;
    }
    Ok(Exit::Ok)
}

async fn run_stress(client: &Client, args: StressArgs, json: bool) -> Result<Exit, CliError> {
    let config = StressConfig {
        requests: args.requests,
        concurrency: args.concurrency,
        train_fraction: args.mix,
        seed: args.seed,
        model: args.model,
        setup_epochs: args.setup_epochs,
        mix_epochs: args.mix_epochs,
        max_duration: seconds("--max-seconds", args.max_seconds)?,
        ..StressConfig::default()
    };

    let spinner = Spinner::start(format!("sending {} requests", config.requests));
    let report = stress::run(client, &config).await;
    spinner.finish();

    let report = report.map_err(|error| match error {
        StressError::InvalidConfig(message) => CliError::usage(message),
        StressError::Setup { model, source } => {
            let inner = CliError::from(source);
            CliError { exit: inner.exit, message: format!("could not train the stress model {model}: {}", inner.message) }
        }
    })?;

    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(&report).expect("the report serializes");
        std::fs::write(path, text + "\n")
            .map_err(|e| CliError::failed(format!("cannot write the report to {}: {e}", path.display())))?;
    }
    if json {
        print_json(&report)?;
    } else {
        print_text(&output::stress_text(&report))?;
    }

    if report.failures > 0 {
        return Err(CliError::failed(format!("{} of {} requests failed", report.failures, report.total)));
    }
    Ok(Exit::Ok)
}

async fn web(client: Client, args: WebArgs) -> Result<Exit, CliError> {
    let settings = crate::web::WebSettings { max_upload_bytes: args.max_upload_mib.saturating_mul(1024 * 1024) };
    let (addr, server) = crate::web::bind(client, settings, args.listen)
        .map_err(|e| CliError::usage(format!("cannot listen on {}: {e}; pick another address with --listen", args.listen)))?;
    eprintln!("web client listening on http://{addr}/ (Ctrl-C stops it)");

    tokio::select! {
        () = server => {}
        _ = tokio::signal::ctrl_c() => eprintln!("stopping the web client"),
    }
    Ok(Exit::Ok)
}

fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}

fn default_dataset_name(path: &Path) -> Result<String, CliError> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
        .ok_or_else(|| CliError::usage(format!("cannot take a dataset name from {}; pass --name", path.display())))
}

fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::failed(format!("cannot encode the result: {e}")))?;
    print_line(&text)
}

fn print_line(text: &str) -> Result<(), CliError> {
    print_text(&format!("{text}\n"))
}

/// Writes to stdout. A closed pipe (as with `client models | head -1`) is not an error.
fn print_text(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failed(format!("cannot write to stdout: {e}"))),
    }
}

