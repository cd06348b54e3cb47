//! Surveys: the six-month goal survey and the quarterly NPS, sent exactly once and answered
//! through signed links.
//!
//! The cycle drives one [`SurveyRun`] after scoring. It closes waiting emails whose grace
//! period ended, reads what the [`outbox`] remembers, lets the pure [`cadence`] decide who is
//! due (with [`window`] for local business hours), records the decisions in the outbox and
//! only then sends, a few at a time through the [`Mailer`](crate::mail::Mailer), stamping
//! each row right after its answer. Last it pushes answers collected by the pages
//! ([`answers`]) to the CRM. `plan` stops after the decisions and changes nothing.
//!
//! Sending stops early in two cases: the cycle is asked to stop (the daemon is shutting down),
//! or the store fails to record a send. Either way no further email is handed to the mailer,
//! the sends in flight finish and are recorded, and the rest stay `planned` for the next run;
//! a store error is returned only after that, so no row is stranded in `sending` by it.
//!
//! What touchpoint itself knows also feeds the next score: the cycle folds the goal surveys it
//! sent and the answers it collected into the pulled facts (see [`local_evidence`]).

pub mod answers;
pub mod cadence;
pub mod mask;
pub mod outbox;
pub mod settings;
pub mod templates;
pub mod token;
pub mod window;

use anyhow::Context;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use lettre::message::Mailbox;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::mail::{self, Mailer, Outgoing, SendError};
use crate::model::{AccountId, SurveyKind, SurveyResponse};
use crate::pull::Book;
use crate::settings::Settings;
use crate::source::RestClient;
use crate::store::Store;
use crate::telemetry::mask_email;
use answers::{PushReport, key_hash};
use cadence::{Email, Hold, Inputs, Plan};
use outbox::{Attempt, OutboxRow, State};
use templates::{EmailContext, ScoreLink};
use token::{LinkSigner, Purpose};

/// Emails handed to the backend at once.
const SEND_CONCURRENCY: usize = 4;

/// What sending needs: the backend and the key that signs the links.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub mailer: Mailer,
    pub signer: LinkSigner,
}

impl Delivery {
    /// The configured backend, and the link secret given or read from the environment.
    pub fn new(settings: &Settings, signer: Option<LinkSigner>) -> anyhow::Result<Self> {
        let signer = match signer {
            Some(signer) => signer,
            None => LinkSigner::from_env()?,
        };
        let mailer = Mailer::new(&settings.mail).context("failed to set up the mail backend")?;
        Ok(Self { mailer, signer })
    }
}

/// What the survey step did (or, in a plan, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SurveyReport {
    pub note: Option<String>,
    pub backend: Option<String>,
    /// Whether the backend sends the emails (SMTP) or writes them as files.
    pub delivers: bool,
    /// Due and allowed: recorded and sent (in a plan: would be).
    pub send: Vec<Email>,
    /// Over a budget: recorded as deferred.
    pub deferred: Vec<Email>,
    /// Missed by more than the grace period: recorded as skipped.
    pub skipped: Vec<(Email, String)>,
    pub held: Vec<Hold>,
    /// Waves that closed before touchpoint began surveying from this store (not missed).
    pub before_start: usize,
    /// Waiting emails whose grace period ended during the pause (now skipped).
    pub expired: u64,
    pub sent: usize,
    /// `(key, error)` of sends that failed; temporary ones are retried later.
    pub failures: Vec<(String, String)>,
    /// Addresses suppressed after a hard bounce.
    pub bounced: usize,
    /// Emails left in `sending` by a run that stopped: an operator must resolve them.
    pub in_sending: Vec<OutboxRow>,
    /// Emails not handed to the mailer because sending stopped early (a stop was asked, or
    /// the store failed); they stay `planned` and go out on the next run.
    pub not_sent: usize,
    pub answers: Option<PushReport>,
}

/// One cycle's survey step.
pub struct SurveyRun<'a> {
    pub settings: &'a Settings,
    pub store: Option<&'a Store>,
    pub crm: Option<&'a RestClient>,
    /// `None` in a plan: nothing is sent.
    pub delivery: Option<&'a Delivery>,
    /// Once cancelled, no further email is handed to the mailer (see the module docs).
    pub stop: Option<&'a CancellationToken>,
    pub now: DateTime<Utc>,
}

/// How one send ended, for the report.
enum Outcome {
    Delivered,
    Failed {
        key: String,
        error: String,
        bounce: bool,
    },
    /// Another run had taken the row.
    NotMine,
    /// Sending stopped before this email was handed over; it stays planned.
    NotSent,
}

impl SurveyRun<'_> {
    /// Plans (and, with a run id and delivery, sends) the surveys due now.
    pub async fn run(&self, book: &Book, run_id: Option<&str>) -> anyhow::Result<SurveyReport> {
        let mut report = SurveyReport::default();
        if !self.settings.surveys.enabled {
            report.note = Some("surveys are off (surveys.enabled = false)".into());
            return Ok(report);
        }
        let acting = match (run_id, self.store, self.delivery) {
            (Some(run_id), Some(store), Some(delivery)) => Some((run_id, store, delivery)),
            _ => None,
        };
        if let Some((_, store, _)) = acting {
            store.begin_surveying(self.now).await?;
            report.expired = store.close_expired(self.now).await?;
        }

        let history = match self.store {
            Some(store) => store.survey_history(self.now).await?,
            None => cadence::History::default(),
        };
        let inputs = Inputs {
            accounts: &book.accounts,
            contacts: &book.contacts,
            held: &book.held,
            history: &history,
            now: self.now,
        };
        let planning = std::time::Instant::now();
        let plan = cadence::plan(&inputs, &self.settings.surveys);
        tracing::debug!(
            due = plan.send.len() + plan.deferred.len(),
            duration_ms = planning.elapsed().as_millis() as u64,
            "planned the survey waves"
        );

        if let Some((run_id, store, delivery)) = acting {
            report.backend = Some(delivery.mailer.describe());
            report.delivers = delivery.mailer.delivers();
            self.execute(run_id, store, delivery, &plan, &mut report)
                .await?;
        }
        if let Some(store) = self.store {
            report.in_sending = store.outbox(&[State::Sending]).await?;
            if acting.is_some() {
                report.answers = self.push_answers(store).await;
            }
        }
        report.send = plan.send;
        report.deferred = plan.deferred;
        report.skipped = plan.skipped;
        report.held = plan.held;
        report.before_start = plan.before_start;
        Ok(report)
    }

    /// Records the plan, then sends what it says, a few at a time.
    async fn execute(
        &self,
        run_id: &str,
        store: &Store,
        delivery: &Delivery,
        plan: &Plan,
        report: &mut SurveyReport,
    ) -> anyhow::Result<()> {
        let unrecorded = store
            .record_plan(run_id, &plan.send, &plan.deferred, &plan.skipped, self.now)
            .await?;
        let sendable: Vec<&Email> = plan
            .send
            .iter()
            .filter(|e| !unrecorded.iter().any(|(key, _)| *key == e.key))
            .collect();
        report.failures.extend(unrecorded);

        let halt = self
            .stop
            .map_or_else(CancellationToken::new, |stop| stop.child_token());
        let first_error = self
            .send_all(store, delivery, &sendable, &halt, report)
            .await;
        if report.not_sent > 0 && self.stop.is_some_and(|stop| stop.is_cancelled()) {
            tracing::warn!(
                run.id = run_id,
                not_sent = report.not_sent,
                "asked to stop while sending: {} survey email(s) stay planned for the next run",
                report.not_sent
            );
        }
        tracing::info!(
            run.id = run_id,
            sent = report.sent,
            failed = report.failures.len(),
            deferred = plan.deferred.len(),
            skipped = plan.skipped.len(),
            held = plan.held.len(),
            not_sent = report.not_sent,
            "survey emails: {} {}, {} failed, {} deferred, {} skipped, {} held, {} not sent",
            report.sent,
            if report.delivers {
                "sent"
            } else {
                "written as .eml files"
            },
            report.failures.len(),
            plan.deferred.len(),
            plan.skipped.len(),
            plan.held.len(),
            report.not_sent
        );
        match first_error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Sends `sendable` a few at a time until `halt` is cancelled, recording every outcome in
    /// `report`. A store error cancels `halt`; the sends in flight are still drained and
    /// recorded, and the first error is returned after them.
    async fn send_all(
        &self,
        store: &Store,
        delivery: &Delivery,
        sendable: &[&Email],
        halt: &CancellationToken,
        report: &mut SurveyReport,
    ) -> Option<anyhow::Error> {
        // Indices rather than references: a stream over borrowed items makes the future
        // lose `Send` for the daemon's spawned jobs (a higher-ranked lifetime limitation).
        let mut sends = stream::iter(0..sendable.len())
            .map(|i| self.send_one(store, delivery, sendable[i], halt))
            .buffer_unordered(SEND_CONCURRENCY);
        let mut first_error = None;
        while let Some(outcome) = sends.next().await {
            match outcome {
                Ok(Outcome::Delivered) => report.sent += 1,
                Ok(Outcome::Failed { key, error, bounce }) => {
                    report.bounced += usize::from(bounce);
                    report.failures.push((key, error));
                }
                Ok(Outcome::NotMine) => {}
                Ok(Outcome::NotSent) => report.not_sent += 1,
                Err(error) if first_error.is_none() => {
                    halt.cancel();
                    first_error = Some(error);
                }
                Err(error) => {
                    tracing::warn!("another survey email could not be recorded: {error:#}")
                }
            }
        }
        first_error
    }

    /// Builds, marks `sending`, sends and records one email.
    async fn send_one(
        &self,
        store: &Store,
        delivery: &Delivery,
        email: &Email,
        halt: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        if halt.is_cancelled() {
            return Ok(Outcome::NotSent);
        }
        let message = match compose(self.settings, &delivery.signer, email, self.now)
            .and_then(|outgoing| mail::build(&self.settings.mail, &outgoing))
        {
            Ok(message) => message,
            Err(e) => {
                let error = format!("the email could not be built: {e:#}");
                tracing::error!(outbox.key = %email.key, "{error}");
                store.skip_email(&email.key, &error).await?;
                return Ok(failed(email, error, false));
            }
        };
        let message_id = message_id(&self.settings.mail, &email.key);
        let Some(attempt) = store.begin_send(&email.key, &message_id, self.now).await? else {
            return Ok(Outcome::NotMine);
        };

        let result = delivery.mailer.send(&message, &key_hash(&email.key)).await;
        let (recorded, outcome) = self.judge(email, attempt, result);
        store.finish_send(&email.key, &recorded).await?;
        if let Outcome::Failed {
            bounce: true,
            error,
            ..
        } = &outcome
        {
            let reason = format!("hard bounce: {error}");
            store
                .suppress(&email.recipient, &reason, Some(&email.key), self.now)
                .await?;
        }
        Ok(outcome)
    }

    /// What a send's result means for the outbox and the report.
    fn judge(
        &self,
        email: &Email,
        attempt: u32,
        result: Result<(), SendError>,
    ) -> (Attempt, Outcome) {
        let mail = &self.settings.mail;
        let to = mask_email(&email.recipient);
        match result {
            Ok(()) => {
                tracing::debug!(outbox.key = %email.key, recipient = %to, "survey email sent");
                (Attempt::Sent, Outcome::Delivered)
            }
            Err(SendError::Transient(error)) => {
                let retry_at = (attempt < mail.max_attempts)
                    .then(|| cadence::retry_at(self.now, attempt, mail.retry_base, mail.retry_max))
                    .filter(|at| *at < email.closes_at);
                tracing::warn!(outbox.key = %email.key, recipient = %to, attempt,
                    "a survey email failed for now: {error}");
                let recorded = Attempt::Transient {
                    error: error.clone(),
                    retry_at,
                };
                (recorded, failed(email, error, false))
            }
            Err(SendError::Permanent { error, bounce }) => {
                tracing::warn!(outbox.key = %email.key, recipient = %to, bounce,
                    "a survey email was refused for good: {error}");
                let recorded = Attempt::Permanent {
                    error: error.clone(),
                };
                (recorded, failed(email, error, bounce))
            }
        }
    }

    async fn push_answers(&self, store: &Store) -> Option<PushReport> {
        let crm = self.crm?;
        match answers::push(store, crm).await {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!("could not push answers to the CRM: {e:#}");
                None
            }
        }
    }
}

fn failed(email: &Email, error: String, bounce: bool) -> Outcome {
    Outcome::Failed {
        key: email.key.clone(),
        error,
        bounce,
    }
}

/// The Message-ID of the email `key`: known before it is sent, so an operator can look a row
/// left in `sending` up in the relay's log.
pub fn message_id(settings: &mail::MailSettings, key: &str) -> String {
    format!(
        "tp.{}@{}",
        &key_hash(key)[..32],
        settings.from.email.domain()
    )
}

/// Renders the email for `email`, with links signed as of `now`.
pub fn compose(
    settings: &Settings,
    signer: &LinkSigner,
    email: &Email,
    now: DateTime<Utc>,
) -> anyhow::Result<Outgoing> {
    let web = &settings.web;
    let recipient_name = mail::display_name(email.display_name.as_deref());
    if email
        .display_name
        .as_deref()
        .is_some_and(|name| name.chars().any(char::is_control))
    {
        tracing::debug!(outbox.key = %email.key,
            "dropped control characters from the recipient's display name");
    }
    let answer_expires = now + web.answer_link_life;
    let answer = web.answer_url(&signer.sign(Purpose::Answer, &email.key, answer_expires));
    let unsubscribe_expires = now + web.unsubscribe_link_life;
    let unsubscribe =
        web.unsubscribe_url(&signer.sign(Purpose::Unsubscribe, &email.key, unsubscribe_expires));
    let context = EmailContext {
        product_name: settings.surveys.product_name.clone(),
        sender_name: settings
            .mail
            .from
            .name
            .clone()
            .unwrap_or_else(|| settings.mail.from.email.to_string()),
        recipient_name: recipient_name.clone(),
        account_name: email.account_name.clone(),
        scores: (0..=10)
            .map(|score| ScoreLink {
                score,
                url: format!("{answer}?score={score}"),
            })
            .collect(),
        yes_url: format!("{answer}?achieved=yes"),
        no_url: format!("{answer}?achieved=no"),
        unsubscribe_url: unsubscribe.clone(),
        expires_on: (answer_expires - TimeDelta::seconds(1))
            .date_naive()
            .to_string(),
    };
    let rendered = settings
        .templates
        .email(email.survey, &context)
        .with_context(|| format!("failed to render the {} email", email.survey.as_str()))?;
    let address = email
        .recipient
        .parse()
        .with_context(|| format!("{} is not an address", mask_email(&email.recipient)))?;
    Ok(Outgoing {
        to: Mailbox::new(recipient_name, address),
        subject: rendered
            .subject
            .chars()
            .filter(|c| !c.is_control())
            .collect(),
        html: rendered.html,
        text: rendered.text,
        message_id: message_id(&settings.mail, &email.key),
        unsubscribe_url: unsubscribe,
    })
}

/// What touchpoint itself knows that scoring and tasks need: the answers it collected (as
/// survey responses, with their stable ids) and when it sent each account a goal survey.
pub async fn local_evidence(
    store: &Store,
    since: DateTime<Utc>,
) -> anyhow::Result<(Vec<SurveyResponse>, Vec<(AccountId, DateTime<Utc>)>)> {
    let answers = store
        .answers_since(since)
        .await?
        .iter()
        .filter_map(answers::Answer::to_response)
        .collect();
    let sent = store
        .goal_surveys_sent()
        .await?
        .into_iter()
        .filter_map(|(account, at)| Some((AccountId::parse(&account).ok()?, at)))
        .collect();
    Ok((answers, sent))
}

/// The survey kind named on the command line or in a URL.
pub fn parse_survey(text: &str) -> Option<SurveyKind> {
    match text.trim().to_ascii_lowercase().as_str() {
        "nps" => Some(SurveyKind::Nps),
        "goal" => Some(SurveyKind::Goal),
        _ => None,
    }
}
