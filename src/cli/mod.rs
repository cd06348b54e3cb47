//! The command line: what a person types, and how each command is carried out.
//!
//! Commands are thin: they load the settings, build the source, store and cycle the
//! configuration asks for, run them, and print a report (text for people, JSON for scripts).

mod progress;
mod report;
pub use report::Hints;
mod runs;
mod surveys;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::cycle::{Cycle, CycleReport, Mode};
use crate::daemon::{self, Daemon};
use crate::demo;
use crate::sandbox::SandboxArgs;
use crate::settings::{Settings, SourceKind};
use crate::source::{CsvSource, RestClient};
use crate::store::{RunStatus, Store};
use crate::surveys::Delivery;
use crate::surveys::token::LinkSigner;
use crate::telemetry;

/// touchpoint: customer-success automation for tech-touch accounts.
#[derive(Debug, Parser)]
#[command(name = "touchpoint", version, about, long_about = None)]
pub struct Cli {
    /// A TOML file whose keys override the defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate the configuration, then print what it resolves to.
    CheckConfig,
    /// Pull the book, score every account, store the scores and write changes back.
    Cycle(RunArgs),
    /// Show everything a cycle would do, and why, without changing anything anywhere.
    Plan(RunArgs),
    /// Run the daemon: scheduled jobs, /healthz, /readyz and /metrics, until SIGTERM or Ctrl-C.
    Run,
    /// Print the run history: start, end, duration, status, counts and reason of each run.
    Runs(RunsArgs),
    /// Print the receipt of an account's latest score and the history behind it.
    Explain {
        /// The CRM id of the account.
        account_id: String,
        /// Show the score in force on this UTC day (YYYY-MM-DD; today or earlier) instead of
        /// the latest: the last one recorded by the end of that day, its receipt, and the
        /// history up to it.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Release the mass-change breaker once a person has checked the red wave: the next cycle
    /// opens the health-driven tasks it held.
    ReleaseBreaker,
    /// Print a survey email as it would go out to a contact of an account (links are signed
    /// with TOUCHPOINT_LINK_SECRET, or a throw-away key when it is not set).
    Preview(surveys::PreviewArgs),
    /// Serve only the survey answer and unsubscribe pages (on web.bind) until interrupted.
    ServeAnswers,
    /// List survey emails in the outbox, settle one left in `sending` by a stopped run, or
    /// send failed ones again once their cause is fixed.
    Outbox(surveys::OutboxArgs),
    /// Serve the sandbox CRM: generated (or CSV) data behind the REST contract.
    Sandbox(SandboxArgs),
    /// Start a sandbox, run cycles against it and print what a CS lead would read.
    Demo(DemoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Score as of the start of this UTC day (YYYY-MM-DD; today or earlier) instead of now.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// With `--as-of` a past day, act on the CRM and send surveys as a live cycle would
    /// (write scores back, open tasks, send the emails due then, now). Without it, a replay of
    /// the past stores its scores locally and only plans the rest.
    #[arg(long)]
    pub act_on_past: bool,
    /// Print a summary (the book, the biggest movers, what turned red) instead of every score
    /// change; the JSON output always has every account.
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// How many of the latest runs to print (at least 1).
    #[arg(long, default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub last: u32,
    /// Print this one run in full, with every record it rejected and why.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Accounts in the demo's generated book.
    #[arg(long, default_value_t = 3000)]
    pub accounts: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the demo keeps its SQLite file (recreated on every demo run).
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
}

/// Runs a parsed command line and says how the process should exit.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig => check_config(cli.config),
        Command::Cycle(args) => run_cycle(cli.config, args, Mode::Act).await,
        Command::Plan(args) => run_cycle(cli.config, args, Mode::Plan).await,
        Command::Run => run_daemon(cli.config).await,
        Command::Runs(args) => runs::print(load(cli.config)?, &args).await,
        Command::Explain {
            account_id,
            as_of,
            output,
        } => explain(cli.config, &account_id, as_of, output).await,
        Command::ReleaseBreaker => release_breaker(cli.config).await,
        Command::Preview(args) => surveys::preview(load(cli.config)?, &args).await,
        Command::ServeAnswers => surveys::serve_answers(load(cli.config)?).await,
        Command::Outbox(args) => surveys::outbox(load(cli.config)?, &args).await,
        Command::Sandbox(args) => run_sandbox(args).await,
        Command::Demo(args) => {
            telemetry::init_default();
            demo::run(cli.config.as_deref(), &args).await
        }
    }
}

/// Loads the settings and starts logging as they say.
pub fn load(config: Option<PathBuf>) -> anyhow::Result<Settings> {
    let settings = Settings::load(config.as_deref())?;
    telemetry::init(&settings.log);
    Ok(settings)
}

/// Loads the settings and checks, besides, what only `cycle` and `run` would meet: the jobs
/// against their schedules, the SMTP credentials and a link secret set in the environment.
fn check_config(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = load(config)?;
    daemon::scheduler::check_jobs(&daemon::jobs::standard_jobs(), &settings)?;
    if matches!(settings.mail.backend, crate::mail::Backend::Smtp(_)) {
        crate::mail::check_credentials()?;
    }
    // A secret that is set but unusable is a mistake to stop on; one that is not set may
    // simply not be given to this shell, and is only warned about below.
    let secret_set = std::env::var(crate::surveys::token::SECRET_VARIABLE)
        .is_ok_and(|secret| !secret.trim().is_empty());
    if settings.surveys.enabled && secret_set {
        LinkSigner::from_env()?;
    }
    describe_config(&mut std::io::stdout().lock(), &settings).context(STDOUT)?;
    Ok(ExitCode::SUCCESS)
}

/// What `check-config` prints: what the configuration resolves to, and what it lacks.
fn describe_config(out: &mut impl Write, settings: &Settings) -> std::io::Result<()> {
    let on_off = |on: bool| if on { "on" } else { "off" };
    writeln!(out, "configuration is valid")?;
    writeln!(out, "  source: {}", describe_source(settings))?;
    writeln!(out, "  store: {}", settings.store.path.display())?;
    writeln!(
        out,
        "  scoring: model {} (config version {})",
        settings.scoring.model_version(),
        settings.scoring.version()
    )?;
    writeln!(out, "  write-back: {}", on_off(settings.writeback.enabled))?;
    writeln!(
        out,
        "  surveys: {}; mail backend: {}; answer links at {}",
        on_off(settings.surveys.enabled),
        match &settings.mail.backend {
            crate::mail::Backend::File { dir } => format!(".eml files in {}", dir.display()),
            crate::mail::Backend::Smtp(smtp) => format!("SMTP {}:{}", smtp.host, smtp.port),
        },
        settings.web.base_url
    )?;
    if settings.surveys.enabled && LinkSigner::from_env().is_err() {
        writeln!(
            out,
            "  warning: {} is not set; cycle and run need it to send surveys",
            crate::surveys::token::SECRET_VARIABLE
        )?;
    }
    describe_daemon(out, settings)?;
    if settings.source.kind == SourceKind::Rest && Settings::source_token().is_err() {
        writeln!(
            out,
            "  warning: {} is not set; cycle and plan need it",
            crate::settings::TOKEN_VARIABLE
        )?;
    }
    out.flush()
}

/// Prints what `touchpoint run` would schedule and serve.
fn describe_daemon(out: &mut impl Write, settings: &Settings) -> std::io::Result<()> {
    let daemon = &settings.daemon;
    writeln!(
        out,
        "  daemon: schedules in {}, HTTP on {}, lease {} s",
        daemon.timezone,
        settings.http.listen,
        daemon.lease_ttl.as_secs()
    )?;
    for (name, job) in &daemon.jobs {
        let next = job
            .schedule
            .next_after(Utc::now())
            .map_or("never".to_owned(), crate::store::timestamp);
        let state = if job.enabled {
            "next at"
        } else {
            "off; would run at"
        };
        writeln!(
            out,
            "    {name}: \"{}\", {state} {next}",
            job.schedule.expression()
        )?;
    }
    Ok(())
}

fn describe_source(settings: &Settings) -> String {
    match &settings.source.kind {
        SourceKind::Rest => format!("REST contract at {}", settings.source.base_url),
        SourceKind::Csv { dir } => format!("CSV book in {}", dir.display()),
    }
}

/// Refuses an `--as-of` day after today (UTC). A score stamped in the future would stand as
/// every account's latest until that day came, and a cycle for it would send today the
/// emails of a wave that is not due; no score can be in force on such a day either.
fn refuse_future(as_of: Option<NaiveDate>) -> anyhow::Result<()> {
    let today = Utc::now().date_naive();
    match as_of {
        Some(day) if day > today => anyhow::bail!(
            "--as-of {day} is after today ({today}, UTC): touchpoint scores and explains only \
             days that have begun; use today or an earlier day"
        ),
        _ => Ok(()),
    }
}

/// The instant a run scores as of: the start of `as_of` (UTC), or now.
pub fn as_of_instant(as_of: Option<NaiveDate>) -> DateTime<Utc> {
    as_of.map_or_else(Utc::now, |day| {
        day.and_time(chrono::NaiveTime::MIN).and_utc()
    })
}

async fn run_cycle(config: Option<PathBuf>, args: RunArgs, mode: Mode) -> anyhow::Result<ExitCode> {
    refuse_future(args.as_of)?;
    let hints = report::Hints::for_this_process(config.as_deref());
    let settings = load(config)?;
    let now = as_of_instant(args.as_of);
    let store = match mode {
        Mode::Act => Some(Store::open(&settings.store).await?),
        Mode::Plan => Store::open_read_only(&settings.store).await?,
    };
    // Ctrl-C or SIGTERM stops an acting cycle at its next safe point, as they stop the daemon's
    // (a second signal ends it at once); so does losing the lease, below.
    let stop = match mode {
        Mode::Act => Some(daemon::stop_on_signals()?),
        Mode::Plan => None,
    };
    let held = match (&stop, &store) {
        (Some(stop), Some(store)) => Some(OneShotLease::take(store, &settings, stop).await?),
        _ => None,
    };
    let command = match mode {
        Mode::Act => daemon::jobs::CYCLE_COMMAND,
        Mode::Plan => "plan",
    };
    let secrets = Secrets {
        act_on_past: args.act_on_past,
        stop,
        ..Secrets::default()
    };
    let report = cycle_with_secrets(&settings, store.as_ref(), command, now, mode, secrets).await;
    let lost_lease = held.as_ref().is_some_and(OneShotLease::was_lost);
    if let Some(held) = held {
        held.release().await;
    }
    let mut report = report?;
    if lost_lease && let (Some(store), Some(run_id)) = (&store, report.run_id.as_deref()) {
        let why = "lost the scheduler lease to another instance while running (suspended \
                   past it?), so it stopped at a safe point";
        store.prefix_run_reason(run_id, why).await?;
        report.reason = Some(match report.reason.take() {
            Some(reason) => format!("{why}; {reason}"),
            None => why.to_owned(),
        });
    }

    match args.output {
        Output::Json => write_json(&report)?,
        Output::Text => {
            let detail = if args.summary {
                report::Detail::Movers
            } else {
                report::Detail::EveryChange
            };
            emit(&report::render(&report, detail, &hints))?
        }
    }
    Ok(exit_code(&report))
}

/// The scheduler lease held by a one-shot `touchpoint cycle` while it runs: a daemon on the
/// same store schedules nothing meanwhile, and a second `touchpoint cycle` refuses to start,
/// so two cycles never pull, send and write side by side. It is renewed in the background;
/// if the process dies, it lapses after `daemon.lease.ttl_secs`, or at once for the next
/// `touchpoint cycle` on the same host, which sees the process is gone. Whoever takes the
/// lease next marks the dead run `interrupted`.
struct OneShotLease {
    store: Store,
    lease: Arc<daemon::lease::Lease>,
    renewing: tokio::task::JoinHandle<()>,
    /// Set when a renewal found the lease taken by another instance.
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl OneShotLease {
    async fn take(
        store: &Store,
        settings: &Settings,
        stop: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let lease = Arc::new(daemon::lease::Lease::one_shot(settings.daemon.lease_ttl));
        let taken = lease.renew(store).await?
            || (daemon::lease::free_if_holder_died(store).await? && lease.renew(store).await?);
        if !taken {
            let holder = daemon::lease::active_holder(store)
                .await?
                .unwrap_or_else(|| "another instance".to_owned());
            let path = settings.store.path.display();
            match holder.strip_prefix(daemon::lease::ONE_SHOT) {
                Some(other) => anyhow::bail!(
                    "another `touchpoint cycle` ({other}) is running on {path}; wait for it \
                     to finish, or use `touchpoint plan`, which changes nothing"
                ),
                None => anyhow::bail!(
                    "a daemon ({holder}) is scheduling cycles on {path}; stop it first, or \
                     use `touchpoint plan`, which changes nothing (a daemon that died without \
                     stopping cleanly holds the lease for up to daemon.lease.ttl_secs = {} s)",
                    settings.daemon.lease_ttl.as_secs()
                ),
            }
        }
        match store.interrupt_unfinished_runs(Utc::now()).await? {
            0 => {}
            n => tracing::warn!(runs = n, "marked {n} unfinished run(s) as interrupted"),
        }
        let renew_every = settings.daemon.lease_renew_every;
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewing = tokio::spawn({
            let (store, lease, stop) = (store.clone(), Arc::clone(&lease), stop.clone());
            let lost = Arc::clone(&lost);
            async move {
                loop {
                    tokio::time::sleep(renew_every).await;
                    match lease.renew(&store).await {
                        Ok(true) => {}
                        // Suspended past the lease (a stopped process, a sleeping host), and
                        // another instance took over: this cycle must not go on beside it.
                        Ok(false) => {
                            tracing::error!(
                                "lost the scheduler lease to another instance; this cycle \
                                 stops at its next safe point"
                            );
                            lost.store(true, std::sync::atomic::Ordering::SeqCst);
                            stop.cancel();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!("could not renew the one-shot cycle's lease: {e:#}");
                        }
                    }
                }
            }
        });
        Ok(Self {
            store: store.clone(),
            lease,
            renewing,
            lost,
        })
    }

    fn was_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn release(self) {
        self.renewing.abort();
        if let Err(e) = self.lease.release(&self.store).await {
            tracing::warn!("could not release the one-shot cycle's lease: {e:#}");
        }
    }
}

/// What a failed write to standard output says.
const STDOUT: &str = "failed to write to standard output";

/// Writes `text` to standard output through its lock. A reader that stopped reading early
/// (`touchpoint plan | head -1`) comes back as an error caused by `BrokenPipe`, which `main`
/// takes as a quiet exit, where `print!` would panic.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context(STDOUT)
}

/// Streams a report to stdout as JSON: a whole book's report is large, and building it as one
/// string first would double its memory.
fn write_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).context("failed to write the JSON report")?;
    writeln!(out).context("failed to write the JSON report")?;
    out.flush().context("failed to write the JSON report")
}

/// Whether `error` comes from standard output's reader going away, anywhere in its chain
/// (including inside a JSON writer's error).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let io = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind);
        let json = cause
            .downcast_ref::<serde_json::Error>()
            .and_then(serde_json::Error::io_error_kind);
        io.or(json) == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Builds the configured source and runs one cycle against it.
pub async fn cycle_once(
    settings: &Settings,
    store: Option<&Store>,
    command: &str,
    now: DateTime<Utc>,
    mode: Mode,
) -> anyhow::Result<CycleReport> {
    cycle_with_token(settings, store, command, now, mode, None).await
}

/// Like [`cycle_once`], with the CRM token given (`None`: read it from the environment).
pub async fn cycle_with_token(
    settings: &Settings,
    store: Option<&Store>,
    command: &str,
    now: DateTime<Utc>,
    mode: Mode,
    token: Option<SecretString>,
) -> anyhow::Result<CycleReport> {
    let secrets = Secrets {
        crm_token: token,
        ..Secrets::default()
    };
    cycle_with_secrets(settings, store, command, now, mode, secrets).await
}

/// Secrets handed in by the caller instead of read from the environment (the demo, tests),
/// and whether a replay of the past may send surveys.
#[derive(Debug, Default)]
pub struct Secrets {
    pub crm_token: Option<SecretString>,
    pub link_signer: Option<LinkSigner>,
    /// A cycle as of a past day writes nothing to the CRM and sends no email unless this is
    /// set: a replay is for looking at the past, and its writes would reach the CRM and real
    /// people today.
    pub act_on_past: bool,
    /// Cancelled to stop the cycle at its next safe point (see [`Cycle::stop`]).
    pub stop: Option<tokio_util::sync::CancellationToken>,
}

/// Like [`cycle_once`], with secrets given; those left `None` are read from the environment.
/// Acting with surveys on needs the mail backend and the link secret: without them the cycle
/// does not start.
pub async fn cycle_with_secrets(
    settings: &Settings,
    store: Option<&Store>,
    command: &str,
    now: DateTime<Utc>,
    mode: Mode,
    secrets: Secrets,
) -> anyhow::Result<CycleReport> {
    let replay = now.date_naive() < Utc::now().date_naive() && !secrets.act_on_past;
    let delivery = match mode {
        Mode::Act if settings.surveys.enabled && !replay => {
            Some(Delivery::new(settings, secrets.link_signer)?)
        }
        _ => None,
    };
    let token = secrets.crm_token;
    let show_progress = std::io::stderr().is_terminal();
    match &settings.source.kind {
        SourceKind::Rest => {
            let token = match token {
                Some(token) => token,
                None => Settings::source_token()?,
            };
            let client = RestClient::new(&settings.source, token)?;
            let cycle = Cycle {
                settings,
                source: &client,
                crm: Some(&client),
                store,
                delivery: delivery.as_ref(),
                command,
                stop: secrets.stop.as_ref(),
                replay,
            };
            progress::while_running(show_progress, &client, cycle.run(now, mode)).await
        }
        SourceKind::Csv { dir } => {
            let source = CsvSource::new(dir.clone());
            let cycle = Cycle {
                settings,
                source: &source,
                crm: None,
                store,
                delivery: delivery.as_ref(),
                command,
                stop: secrets.stop.as_ref(),
                replay,
            };
            cycle.run(now, mode).await
        }
    }
}

/// The summary the demo prints: bands, measures, the biggest movers, where to look next.
pub fn render_summary(report: &CycleReport, hints: &report::Hints) -> String {
    report::render(report, report::Detail::Movers, hints)
}

fn exit_code(report: &CycleReport) -> ExitCode {
    match report.status {
        RunStatus::Failed | RunStatus::Interrupted => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

async fn explain(
    config: Option<PathBuf>,
    account_id: &str,
    as_of: Option<NaiveDate>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    refuse_future(as_of)?;
    let settings = load(config)?;
    let Some(store) = Store::open_read_only(&settings.store).await? else {
        anyhow::bail!(
            "there is no store at {} yet: run `touchpoint cycle` first",
            settings.store.path.display()
        );
    };
    let explained = match as_of {
        Some(day) => store.explain_as_of(account_id, day).await?,
        None => store.explain(account_id).await?,
    };
    let Some(explained) = explained else {
        let when = as_of.map_or(String::new(), |day| format!(" by the end of {day}"));
        anyhow::bail!(
            "account {account_id} has no score{when}: is the id right, and has a cycle scored \
             it (`touchpoint runs` lists the runs)?"
        );
    };
    match output {
        Output::Json => write_json(&explained)?,
        Output::Text => emit(&report::render_explained(&explained)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_daemon(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = load(config)?;
    let stop = daemon::stop_on_signals()?;
    Daemon::new(settings).await?.run(stop).await?;
    Ok(ExitCode::SUCCESS)
}

async fn release_breaker(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = load(config)?;
    let store = Store::open(&settings.store).await?;
    let was = store.flag(crate::tasks::BREAKER_FLAG).await?;
    if store.clear_flag(crate::tasks::BREAKER_FLAG).await? {
        emit(&format!(
            "released the mass-change breaker (tripped {}); the next cycle opens the held \
             tasks\n",
            was.unwrap_or_default()
        ))?;
    } else {
        emit("the mass-change breaker was not tripped; nothing to release\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_sandbox(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    telemetry::init_default();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    args.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
