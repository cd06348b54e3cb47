//! The `touchpoint` binary: parse the command line, run it, report why it exited.

use std::process::ExitCode;

use clap::Parser;
use touchpoint::cli::{self, Cli};

/// mimalloc keeps the many small, short-lived allocations of a pull (one page of rows after
/// another, on several threads) from fragmenting the heap, which holds peak memory down on
/// large books.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        // The reader of our output stopped early (`touchpoint plan | head -1`): it has what it
        // wanted, so there is nothing to report.
        Err(error) if cli::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("touchpoint: {error:#}");
            ExitCode::FAILURE
        }
    }
}
