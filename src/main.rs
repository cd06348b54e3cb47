//! The `touchpoint` binary: parse the command line, run it, report why it exited.

use std::process::ExitCode;

use clap::Parser;
use touchpoint::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("touchpoint: {error:#}");
            ExitCode::FAILURE
        }
    }
}
