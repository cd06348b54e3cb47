//! The command-line flags of the `sandbox` command, ready to flatten into the binary's CLI.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use tokio::net::TcpListener;

use super::{Faults, SandboxOptions};

/// Serve the sandbox CRM: a generated book (or a CSV book) over touchpoint's REST contract.
#[derive(Clone, Debug, clap::Args)]
pub struct SandboxArgs {
    /// The port to listen on, on loopback (the default configuration's `source.base_url`).
    #[arg(long, default_value_t = 8700)]
    pub port: u16,
    /// The address to listen on; loopback unless you mean to share the sandbox.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Accounts in the generated book.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Seed of the generated book; the same seed, size and anchor give the same book.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The "today" of the book (YYYY-MM-DD); the current UTC date when absent.
    #[arg(long)]
    pub anchor: Option<NaiveDate>,
    /// Serve this CSV book instead of a generated one.
    #[arg(long, value_name = "DIR")]
    pub from_csv: Option<PathBuf>,
    /// The bearer token clients must send.
    #[arg(
        long,
        env = "TOUCHPOINT_SANDBOX_TOKEN",
        default_value = "sandbox-token",
        hide_env_values = true
    )]
    pub token: String,
    /// Share of /v1/ requests answered with a 5xx (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub error_share: f64,
    /// Answer every Nth /v1/ request with a 429.
    #[arg(long, value_name = "N")]
    pub rate_limit_every: Option<u32>,
    /// Retry-After of those 429s, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u32,
    /// Delay added to every /v1/ answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Share of list rows served malformed (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub malformed_share: f64,
    /// Page number whose next_cursor repeats the cursor it was called with.
    #[arg(long, value_name = "K")]
    pub repeat_cursor_on_page: Option<u32>,
    /// Accept /v1/ requests and never answer them.
    #[arg(long)]
    pub hang: bool,
    /// Share of /v1/ writes (PUT) answered with a 5xx (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub write_error_share: f64,
    /// Share of PUT /v1/health items refused with a 422 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub refuse_health_share: f64,
    /// Serve this many /v1/ writes, then answer every further one with a daily-limit 429.
    #[arg(long, value_name = "N")]
    pub daily_write_limit: Option<u32>,
    /// Share of /v1/ writes carried out and then answered with a 502, as if the answer were
    /// lost on its way back (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub lost_answer_share: f64,
}

impl SandboxArgs {
    pub fn options(&self) -> SandboxOptions {
        SandboxOptions {
            accounts: self.accounts,
            seed: self.seed,
            anchor: self.anchor.unwrap_or_else(|| Utc::now().date_naive()),
            from_csv: self.from_csv.clone(),
            token: self.token.clone(),
            faults: Faults {
                error_share: self.error_share,
                rate_limit_every: self.rate_limit_every,
                retry_after_secs: self.retry_after_secs,
                delay_ms: self.delay_ms,
                malformed_share: self.malformed_share,
                repeat_cursor_on_page: self.repeat_cursor_on_page,
                hang: self.hang,
                write_error_share: self.write_error_share,
                refuse_health_share: self.refuse_health_share,
                daily_write_limit: self.daily_write_limit,
                lost_answer_share: self.lost_answer_share,
            },
        }
    }

    /// Binds the address and serves until `shutdown` resolves.
    pub async fn run(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = SocketAddr::new(self.host, self.port);
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen on {address}"))?;
        tracing::info!("sandbox CRM listening on http://{address} (stop with Ctrl-C)");
        super::serve(self.options(), listener, shutdown).await
    }
}
