//! `touchpoint demo`: the whole loop on a fresh clone, with nothing to install or configure.
//!
//! It starts the sandbox CRM in-process with a generated book, points a fresh SQLite store at a
//! local data folder, runs a baseline cycle four weeks back and a second cycle as of today, and
//! prints what a CS lead would read: the book by band and by measure, the biggest movers, and
//! where to look next. Scores are written back to the sandbox, never anywhere else, and survey
//! emails are written as `.eml` files into the demo folder (the send window is left open all
//! week so the demo shows them at any hour). The links in them are signed with
//! `TOUCHPOINT_LINK_SECRET` when it is set, else with a key made for this run.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use secrecy::SecretString;

use crate::cli::{DemoArgs, Hints, Secrets, as_of_instant, cycle_with_secrets, emit};
use crate::cycle::Mode;
use crate::sandbox::{self, SandboxOptions};
use crate::settings::Settings;
use crate::store::Store;
use crate::surveys::token::LinkSigner;

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
    let outbox = args.data_dir.join("outbox");
    let settings = demo_settings(user_config, &crm.base_url(), &store_path, &outbox)?;
    remove_store(&store_path)?;
    remove_emails(&outbox)?;
    let signer = LinkSigner::from_env().unwrap_or_else(|_| LinkSigner::random());
    let store = Store::open(&settings.store).await?;

    emit(&format!(
        "touchpoint demo: a sandbox CRM with {} generated accounts (seed {}) at {}\n\
         store: {}\n\n",
        args.accounts,
        args.seed,
        crm.base_url(),
        store_path.display()
    ))?;

    let baseline_day = today - TimeDelta::days(BASELINE_DAYS_BACK);
    let secrets = |token: &SecretString| Secrets {
        crm_token: Some(token.clone()),
        link_signer: Some(signer.clone()),
        ..Secrets::default()
    };
    let baseline = cycle_with_secrets(
        &settings,
        Some(&store),
        "demo",
        as_of_instant(Some(baseline_day)),
        Mode::Act,
        secrets(&token),
    )
    .await?;
    emit(&format!(
        "Baseline cycle as of {baseline_day}: {} accounts scored, status {}.\n\n",
        baseline.scored,
        baseline.status.as_str()
    ))?;

    let report = cycle_with_secrets(
        &settings,
        Some(&store),
        "demo",
        as_of_instant(Some(today)),
        Mode::Act,
        secrets(&token),
    )
    .await?;
    let hints = Hints {
        store: Some(store_path.display().to_string()),
        source_reachable: false,
        ..Hints::for_this_process(None)
    };
    let mut summary = super::cli::render_summary(&report, &hints);
    let _ = writeln!(
        summary,
        "\nThe sandbox CRM now holds {} health scores written back by touchpoint.",
        crm.health().len()
    );
    let _ = writeln!(
        summary,
        "Survey emails: {} written as .eml files to {} (nothing was sent).",
        count_emails(&outbox),
        outbox.display()
    );
    emit(&summary)?;

    crm.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The defaults (and the user's file, if any), pointed at the in-process sandbox and the demo
/// store. The process environment still applies, so `TOUCHPOINT__...` variables work here too.
fn demo_settings(
    user_config: Option<&Path>,
    base_url: &str,
    store: &Path,
    outbox: &Path,
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
    let demo_mail = [
        ("TOUCHPOINT__MAIL__BACKEND", "file".to_owned()),
        ("TOUCHPOINT__MAIL__FILE_DIR", outbox.display().to_string()),
        (
            "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
            "mon,tue,wed,thu,fri,sat,sun".into(),
        ),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__START", "00:00".into()),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00".into()),
    ];
    for (name, value) in demo_mail {
        environment.insert(name.into(), value);
    }
    Ok(Settings::load_from(user_config, Some(environment))?)
}

/// Starts every demo with no emails from an earlier one.
fn remove_emails(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "eml") {
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove {}", path.display()))?;
        }
    }
    Ok(())
}

fn count_emails(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .count()
    })
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
