//! The `touchpoint` binary: parse the command line, run it, report why it exited.

use std::process::ExitCode;

use clap::Parser;
use touchpoint::cli::{self, Cli};

/// mimalloc keeps the many small, short-lived allocations of a pull (one page of rows after
/// another, on several threads) from fragmenting the heap, which holds peak memory down on
/// large books. It is built with `no_thp`: on a host whose transparent huge pages are set to
/// `madvise` (the common default), mimalloc would otherwise ask for huge pages for its arenas,
/// and every 2 MiB page touched once stays resident, which at 100,000 accounts added 25 to 60
/// MB to the peak (docs/benchmarks.md).
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
