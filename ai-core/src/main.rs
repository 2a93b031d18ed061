//! The `ai-core` binary: parses arguments, runs the command and maps the
//! outcome to an exit code (0 ok, 2 invalid input, 3 model not found,
//! 4 dimension mismatch, 1 anything else).

use std::process::ExitCode;

use ai_core::cli::{run, Cli};
use clap::Parser;
use serde_json::json;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let wants_json = std::env::args_os().any(|a| a == "--json");

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            if wants_json {
                let message = e.kind().to_string();
                println!(
                    "{}",
                    json!({"success": false, "error": message, "code": "INVALID_PAYLOAD"})
                );
            }
            let _ = e.print();
            return ExitCode::from(2);
        }
    };

    let json_output = cli.json();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let message = error.to_string().replace('\n', " ");
            eprintln!("error: {message}");
            if json_output {
                println!(
                    "{}",
                    json!({"success": false, "error": message, "code": error.code()})
                );
            }
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
