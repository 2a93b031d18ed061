//! The `client` binary; everything but the exit lives in `client::cli`.

fn main() {
    std::process::exit(client::cli::main());
}
