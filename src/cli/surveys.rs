//! The survey commands: `preview`, `serve-answers` and `outbox`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Args, ValueEnum};
use tokio::net::TcpListener;

use crate::mail;
use crate::model::{Account, Contact, SurveyKind};
use crate::settings::{Settings, SourceKind};
use crate::source::{CsvSource, RestClient, Source};
use crate::store::Store;
use crate::surveys::cadence::{Email, normalise_address};
use crate::surveys::outbox::{Resolution, Settled, State};
use crate::surveys::token::LinkSigner;
use crate::surveys::{compose, parse_survey};
use crate::telemetry::mask_email;
use crate::web::{self, WebState};

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The survey: goal or nps.
    #[arg(value_parser = ["goal", "nps"])]
    pub survey: String,
    /// The CRM id of the account.
    #[arg(long)]
    pub account: String,
    /// The CRM id of the contact; by default the account's first live contact with an address
    /// (for the goal survey, of a goal persona if it has one).
    #[arg(long)]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolutionArg {
    /// The relay's log shows the email went out.
    Sent,
    /// It did not go out: send it on the next cycle (while its grace period lasts).
    Retry,
    /// Leave it unsent.
    Skipped,
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Only rows in this state: planned, deferred, sending, sent, failed_transient,
    /// failed_permanent or skipped.
    #[arg(long)]
    pub state: Option<String>,
    /// Settle the email with this key: one a stopped run left in `sending`, or (with
    /// `--as retry`) one that failed permanently, once the cause is fixed.
    #[arg(
        long,
        value_name = "KEY",
        requires = "resolution",
        conflicts_with = "retry_failed"
    )]
    pub resolve: Option<String>,
    /// How to settle it.
    #[arg(long = "as", value_enum, requires = "resolve")]
    pub resolution: Option<ResolutionArg>,
    /// Send every failed_permanent email again on the next cycle (after fixing the relay,
    /// say), except those whose grace period has ended or whose address is suppressed.
    #[arg(long)]
    pub retry_failed: bool,
    /// With --retry-failed: only the emails of this wave (as `touchpoint outbox` lists it,
    /// e.g. 6m or 2025-Q1).
    #[arg(long, value_name = "WAVE", requires = "retry_failed")]
    pub wave: Option<String>,
}

/// `touchpoint preview`: renders one email as it would go out and prints it.
pub async fn preview(settings: Settings, args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let survey = parse_survey(&args.survey).context("the survey is goal or nps")?;
    let (account, contact) = match &settings.source.kind {
        SourceKind::Rest => {
            let client = RestClient::new(&settings.source, Settings::source_token()?)?;
            find(&client, &settings, survey, args).await?
        }
        SourceKind::Csv { dir } => {
            find(&CsvSource::new(dir.clone()), &settings, survey, args).await?
        }
    };
    let signer = LinkSigner::from_env().unwrap_or_else(|_| {
        eprintln!("(links are signed with a throw-away key: TOUCHPOINT_LINK_SECRET is not set)");
        LinkSigner::random()
    });
    let email = preview_email(survey, &account, &contact, &settings)?;
    let outgoing = compose(&settings, &signer, &email, Utc::now())?;
    let message = mail::build(&settings.mail, &outgoing)?;
    super::emit(&String::from_utf8_lossy(&message.formatted()))?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the account and picks the contact from the source.
async fn find<S: Source>(
    source: &S,
    settings: &Settings,
    survey: SurveyKind,
    args: &PreviewArgs,
) -> anyhow::Result<(Account, Contact)> {
    let mut account = None;
    let mut contacts = Vec::new();
    source
        .accounts(&mut |row| {
            if let Ok(a) = row
                && a.id.as_str() == args.account
            {
                account = Some(a);
            }
        })
        .await?;
    let account = account.with_context(|| format!("no account {} in the source", args.account))?;
    source
        .contacts(&mut |row| {
            if let Ok(c) = row
                && c.account_id == account.id
            {
                contacts.push(c);
            }
        })
        .await?;
    contacts.sort_by(|a, b| a.id.cmp(&b.id));
    let wanted = |c: &&Contact| match &args.contact {
        Some(id) => c.id.as_str() == id,
        None => c.is_live() && c.email.is_some(),
    };
    let goal_persona = |c: &&Contact| {
        survey == SurveyKind::Goal
            && c.persona
                .is_some_and(|p| settings.surveys.goal_personas.contains(&p))
    };
    let contact = contacts
        .iter()
        .filter(wanted)
        .find(goal_persona)
        .or_else(|| contacts.iter().find(wanted))
        .cloned()
        .with_context(|| format!("no such contact with an address at account {}", account.id))?;
    Ok((account, contact))
}

/// The email a preview shows, with a key of its own (it is never recorded).
fn preview_email(
    survey: SurveyKind,
    account: &Account,
    contact: &Contact,
    settings: &Settings,
) -> anyhow::Result<Email> {
    let raw = contact.email.as_deref().unwrap_or_default();
    let recipient =
        normalise_address(raw).map_err(|e| anyhow::anyhow!("contact {}: {e}", contact.id))?;
    let today = Utc::now().date_naive();
    Ok(Email {
        key: format!("preview:{}:{}:{}", survey.as_str(), account.id, contact.id),
        person_wave: String::new(),
        survey,
        wave: "preview".into(),
        due_on: today,
        closes_at: Utc::now() + settings.surveys.grace,
        account_id: account.id.to_string(),
        account_name: account.name.clone(),
        contact_id: contact.id.to_string(),
        recipient,
        display_name: contact.name.clone(),
        zone: settings.surveys.default_timezone.name().to_owned(),
        why: "preview".into(),
    })
}

/// `touchpoint serve-answers`: the answer pages alone, until Ctrl-C.
pub async fn serve_answers(settings: Settings) -> anyhow::Result<ExitCode> {
    let signer = LinkSigner::from_env()?;
    let store = Store::open(&settings.store).await?;
    let listener = TcpListener::bind(settings.web.bind)
        .await
        .with_context(|| format!("failed to listen on {}", settings.web.bind))?;
    super::emit(&format!(
        "answer pages on http://{} (links say {}); Ctrl-C stops\n",
        settings.web.bind, settings.web.base_url
    ))?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    web::serve(listener, WebState::new(&settings, store, signer), shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// `touchpoint outbox`: lists rows, settles one, or retries the permanent failures.
pub async fn outbox(settings: Settings, args: &OutboxArgs) -> anyhow::Result<ExitCode> {
    if let (Some(key), Some(resolution)) = (&args.resolve, args.resolution) {
        return resolve(&settings, key, resolution).await;
    }
    if args.retry_failed {
        return retry_failed(&settings, args.wave.as_deref()).await;
    }

    let states: Vec<State> = match &args.state {
        Some(name) => vec![State::parse(name).with_context(|| format!("{name:?} is not a state"))?],
        None => Vec::new(),
    };
    let Some(store) = Store::open_read_only(&settings.store).await? else {
        super::emit("there is no store yet: no survey email was recorded\n")?;
        return Ok(ExitCode::SUCCESS);
    };
    let rows = store.outbox(&states).await?;
    if rows.is_empty() {
        let which = args
            .state
            .as_deref()
            .map_or(String::new(), |state| format!(" in state {state}"));
        super::emit(&format!("no survey email{which} is in the outbox\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for row in rows {
        writeln!(
            out,
            "{:<17} {} {} {} (attempts {}){}{}",
            row.state,
            row.key,
            mask_email(&row.recipient),
            row.message_id
                .as_deref()
                .map_or(String::new(), |m| format!("<{m}>")),
            row.attempts,
            row.reason
                .as_deref()
                .map_or(String::new(), |r| format!("; {r}")),
            row.last_error
                .as_deref()
                .map_or(String::new(), |e| format!("; {e}")),
        )
        .context(super::STDOUT)?;
    }
    out.flush().context(super::STDOUT)?;
    Ok(ExitCode::SUCCESS)
}

/// `touchpoint outbox --resolve KEY --as ...`: settles one email, or says why it cannot.
async fn resolve(
    settings: &Settings,
    key: &str,
    resolution: ResolutionArg,
) -> anyhow::Result<ExitCode> {
    let store = Store::open(&settings.store).await?;
    let resolution = match resolution {
        ResolutionArg::Sent => Resolution::Sent,
        ResolutionArg::Retry => Resolution::Retry,
        ResolutionArg::Skipped => Resolution::Skipped,
    };
    let why = match store.resolve(key, resolution, Utc::now()).await? {
        Settled::Done => {
            super::emit(&format!("settled {key}\n"))?;
            return Ok(ExitCode::SUCCESS);
        }
        Settled::Unknown => {
            format!("there is no survey email {key}; `touchpoint outbox` lists them")
        }
        Settled::WrongState { state } if resolution == Resolution::Retry => {
            format!("{key} is {state}: only emails in sending or failed_permanent can be retried")
        }
        Settled::WrongState { state } => format!(
            "{key} is {state}: only an email left in sending can be settled as sent or skipped"
        ),
        Settled::Closed { closes_at } => format!(
            "{key} cannot be sent again: its wave's grace period ended at {closes_at}, and a \
             wave is never sent late"
        ),
        Settled::Suppressed { reason } => {
            format!("{key} cannot be sent again: its address is suppressed ({reason})")
        }
    };
    eprintln!("{why}; nothing changed");
    Ok(ExitCode::FAILURE)
}

/// `touchpoint outbox --retry-failed [--wave W]`: plans the permanent failures again.
async fn retry_failed(settings: &Settings, wave: Option<&str>) -> anyhow::Result<ExitCode> {
    let store = Store::open(&settings.store).await?;
    let report = store.retry_failed(wave, Utc::now()).await?;
    let scope = wave.map_or(String::new(), |w| format!(" of wave {w}"));
    let mut text = format!(
        "{} failed_permanent email(s){scope} planned again; the next cycle sends them\n",
        report.retried
    );
    if report.closed > 0 {
        text.push_str(&format!(
            "{} left failed: their wave's grace period has ended, and a wave is never sent late\n",
            report.closed
        ));
    }
    if report.suppressed > 0 {
        text.push_str(&format!(
            "{} left failed: their address is suppressed (a hard bounce or an unsubscribe)\n",
            report.suppressed
        ));
    }
    super::emit(&text)?;
    Ok(ExitCode::SUCCESS)
}
