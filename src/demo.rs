//! `touchpoint demo`: the whole loop on a fresh clone, with nothing to install or configure.
//!
//! It starts the sandbox CRM in-process with a generated book, points a fresh SQLite store at a
//! local data folder, runs a baseline cycle four weeks back and a second cycle as of today, and
//! prints what a CS lead would read: the book by band and by measure, the biggest movers, and
//! where to look next. Scores are written back to the sandbox, never anywhere else.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use secrecy::SecretString;

use crate::cli::{DemoArgs, as_of_instant, cycle_with_token};
use crate::cycle::Mode;
use crate::sandbox::{self, SandboxOptions};
use crate::settings::Settings;
use crate::store::Store;

/// How far back the baseline cycle scores, so the second cycle has movement to show.
const BASELINE_DAYS_BACK: i64 = 28;

pub async fn run(user_config: Option<&Path>, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let today = Utc::now().date_naive();
    let options = SandboxOptions {
        accounts: args.accounts,
        seed: args.seed,
        anchor: today,
        ..SandboxOptions::default()
    };
    let token = SecretString::from(options.token.clone());
    let crm = sandbox::spawn(options)
        .await
        .context("failed to start the sandbox CRM")?;

    let store_path = args.data_dir.join("touchpoint.db");
    let settings = demo_settings(user_config, &crm.base_url(), &store_path)?;
    remove_store(&store_path)?;
    let store = Store::open(&settings.store).await?;

    println!(
        "touchpoint demo: a sandbox CRM with {} generated accounts (seed {}) at {}",
        args.accounts,
        args.seed,
        crm.base_url()
    );
    println!("store: {}\n", store_path.display());

    let baseline_day = today - TimeDelta::days(BASELINE_DAYS_BACK);
    let baseline = cycle_with_token(
        &settings,
        Some(&store),
        "demo",
        as_of_instant(Some(baseline_day)),
        Mode::Act,
        Some(token.clone()),
    )
    .await?;
    println!(
        "Baseline cycle as of {baseline_day}: {} accounts scored, status {}.\n",
        baseline.scored,
        baseline.status.as_str()
    );

    let report = cycle_with_token(
        &settings,
        Some(&store),
        "demo",
        as_of_instant(Some(today)),
        Mode::Act,
        Some(token),
    )
    .await?;
    print!("{}", super::cli::render_summary(&report));
    println!(
        "\nThe sandbox CRM now holds {} health scores written back by touchpoint.",
        crm.health().len()
    );
    if let Some(example) = report.accounts.iter().find(|a| a.turned_red) {
        println!(
            "Explain a score: TOUCHPOINT__STORE__PATH={} touchpoint explain {}",
            store_path.display(),
            example.account_id
        );
    }

    crm.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The defaults (and the user's file, if any), pointed at the in-process sandbox and the demo
/// store. The process environment still applies, so `TOUCHPOINT__...` variables work here too.
fn demo_settings(
    user_config: Option<&Path>,
    base_url: &str,
    store: &Path,
) -> anyhow::Result<Settings> {
    let mut environment: HashMap<String, String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("TOUCHPOINT__"))
        .collect();
    environment.insert("TOUCHPOINT__SOURCE__KIND".into(), "rest".into());
    environment.insert("TOUCHPOINT__SOURCE__BASE_URL".into(), base_url.to_owned());
    environment.insert(
        "TOUCHPOINT__STORE__PATH".into(),
        store.display().to_string(),
    );
    Ok(Settings::load_from(user_config, Some(environment))?)
}

/// Starts every demo from an empty store so its baseline is a baseline.
fn remove_store(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("failed to remove {file}")),
        }
    }
    Ok(())
}
