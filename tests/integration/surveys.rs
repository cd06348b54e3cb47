//! Surveys end to end: a CSV book served by the sandbox CRM, a real SMTP server on loopback
//! that can refuse on demand, the answer pages on loopback, and the store in a temporary
//! folder.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use touchpoint::cli::{Secrets, cycle_with_secrets};
use touchpoint::cycle::{Cycle, CycleReport, Mode};
use touchpoint::model::SurveyKind;
use touchpoint::source::RestClient;
use touchpoint::store::{RunStatus, Store};
use touchpoint::surveys::Delivery;
use touchpoint::surveys::outbox::{OutboxRow, Resolution, Settled};
use touchpoint::surveys::token::LinkSigner;
use touchpoint::web::{self, WebState};

use crate::helpers::{App, TOKEN};
use crate::smtp::SmtpServer;

pub const SECRET: &str = "integration-test-link-secret-0123456789";

/// Contract on 31 August (month end) and on 29 February (leap day): both have a goal wave due
/// on 28 February 2025. A-leap's zone is not a zone (the default, UTC, applies).
const ACCOUNTS: &str = "\
id,name,domain,owner_id,basic_setup_done,contract_start_date,timezone,archived,updated_at
A-end,Month End <Corp>,,O-1,true,2024-08-31,Europe/London,false,2024-12-01T00:00:00Z
A-leap,Leap & Co,,O-1,true,2024-02-29,Mars/Base,false,2024-12-01T00:00:00Z
A-gone,Gone Co,,O-1,true,2024-08-31,,true,2024-12-01T00:00:00Z
";

const OWNERS: &str = "\
id,email,name,timezone,active
O-1,owner.one@example.com,Owner One,Europe/London,true
";

const CONTACTS: &str = "\
id,account_id,email,name,persona,timezone,email_opt_out,merged_into,archived,updated_at
P-zoe,A-end,zoe@example.com,Zoë Ångström-Núñez,executive_sponsor,Europe/Berlin,false,,false,2024-01-01T00:00:00Z
P-zoe2,A-end, ZOE@Example.com ,Zoe A,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-bounce,A-end,bounce@example.com,Bo Unce,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-later,A-end,later@example.com,Lee Later,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-opt,A-end,opt@example.com,Opted Out,executive_sponsor,,true,,false,2024-01-01T00:00:00Z
P-bad,A-end,bad.example.com,Bad Address,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-old,A-end,old@example.com,Old Contact,executive_sponsor,,false,,true,2024-01-01T00:00:00Z
P-leap,A-leap,leap@example.com,Lea Leap,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
P-gone,A-gone,gone@example.com,Gone Person,executive_sponsor,,false,,false,2024-01-01T00:00:00Z
";

/// Monday 3 March 2025, 10:00 UTC: business hours in London, Berlin and UTC; both goal waves
/// (due 28 February) are inside their 14 days' grace.
pub const MONDAY: &str = "2025-03-03T10:00:00Z";

pub fn signer() -> LinkSigner {
    LinkSigner::new(SecretString::from(SECRET)).expect("a long enough secret")
}

pub fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an instant")
}

pub fn write_book(dir: &Path, accounts: &str, contacts: &str) {
    let files = [
        ("accounts.csv", accounts),
        ("owners.csv", OWNERS),
        ("contacts.csv", contacts),
        (
            "activities.csv",
            "id,account_id,type,series,occurred_at,outcome,contact_ids,updated_at\n",
        ),
        (
            "usage.csv",
            "account_id,feature,date,event_count,active_users\n",
        ),
        (
            "survey_responses.csv",
            "id,account_id,contact_id,survey,submitted_at,score,goal_achieved,comment\n",
        ),
    ];
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("the test book is written");
    }
}

/// One test's world: the sandbox with the book, an SMTP server, the answer pages.
pub struct Harness {
    pub app: App,
    pub smtp: SmtpServer,
    pub web: String,
    clock: Arc<Mutex<DateTime<Utc>>>,
    _book: TempDir,
}

impl Harness {
    pub async fn start(extra: &[(&str, &str)]) -> Harness {
        Self::with_book(ACCOUNTS, CONTACTS, extra).await
    }

    pub async fn with_book(accounts: &str, contacts: &str, extra: &[(&str, &str)]) -> Harness {
        let book = TempDir::new().expect("a folder");
        write_book(book.path(), accounts, contacts);
        let app = App::from_csv(book.path()).await;
        let smtp = SmtpServer::start().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let web = format!("http://{}", listener.local_addr().expect("an address"));

        let mut settings: Vec<(&str, String)> = smtp.settings();
        settings.extend([
            ("TOUCHPOINT__SURVEYS__ENABLED", "true".to_owned()),
            ("TOUCHPOINT__WEB__BASE_URL", web.clone()),
            ("TOUCHPOINT__MAIL__RETRY_BASE_MINUTES", "1".to_owned()),
            (
                "TOUCHPOINT__TASKS__BREAKER__MIN_ACCOUNTS",
                "1000".to_owned(),
            ),
        ]);
        settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let app = app.with(&pairs);

        let clock = Arc::new(Mutex::new(at(MONDAY)));
        let shared = Arc::clone(&clock);
        let state = WebState::new(&app.settings, app.store().await, signer()).with_clock(Arc::new(
            move || *shared.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        tokio::spawn(web::serve(listener, state, std::future::pending()));
        Harness {
            app,
            smtp,
            web,
            clock,
            _book: book,
        }
    }

    /// The instant the answer pages believe it is.
    pub fn set_clock(&self, instant: &str) {
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = at(instant);
    }

    pub async fn cycle(&self, instant: &str) -> CycleReport {
        self.run(instant, Mode::Act).await
    }

    pub async fn plan(&self, instant: &str) -> CycleReport {
        self.run(instant, Mode::Plan).await
    }

    async fn run(&self, instant: &str, mode: Mode) -> CycleReport {
        self.try_run(instant, mode)
            .await
            .expect("the cycle runs to a report")
    }

    /// A cycle that may end with an error (a test that breaks the store on purpose).
    pub async fn try_cycle(&self, instant: &str) -> anyhow::Result<CycleReport> {
        self.try_run(instant, Mode::Act).await
    }

    async fn try_run(&self, instant: &str, mode: Mode) -> anyhow::Result<CycleReport> {
        let store = match mode {
            Mode::Act => Some(self.app.store().await),
            Mode::Plan => Store::open_read_only(&self.app.settings.store)
                .await
                .expect("the store opens"),
        };
        let secrets = Secrets {
            crm_token: Some(SecretString::from(TOKEN)),
            link_signer: Some(signer()),
            act_on_past: true,
            stop: None,
        };
        let command = if mode == Mode::Act { "cycle" } else { "plan" };
        cycle_with_secrets(
            &self.app.settings,
            store.as_ref(),
            command,
            at(instant),
            mode,
            secrets,
        )
        .await
    }

    pub async fn rows(&self) -> HashMap<String, OutboxRow> {
        let store = self.app.store().await;
        let rows = store.outbox(&[]).await.expect("the outbox");
        rows.into_iter().map(|r| (r.key.clone(), r)).collect()
    }

    /// Raw messages the SMTP server accepted for `address`.
    /// The last email `address` received.
    pub fn last_message_to(&self, address: &str) -> String {
        self.messages_to(address)
            .pop()
            .unwrap_or_else(|| panic!("an email to {address}"))
    }

    pub fn messages_to(&self, address: &str) -> Vec<String> {
        self.smtp
            .received()
            .into_iter()
            .filter(|m| m.recipients.iter().any(|r| r == address))
            .map(|m| m.data)
            .collect()
    }

    pub async fn get(&self, url: &str) -> (u16, String) {
        let response = reqwest::get(url).await.expect("the page answers");
        (
            response.status().as_u16(),
            response.text().await.expect("a body"),
        )
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> (u16, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("the page answers");
        (
            response.status().as_u16(),
            response.text().await.expect("a body"),
        )
    }
}

/// Every link in a message, from its plain-text and HTML parts, decoded.
pub fn links(raw: &str) -> Vec<String> {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("a parsable message");
    let mut bodies = Vec::new();
    bodies.extend(message.body_text(0).map(|t| t.into_owned()));
    bodies.extend(message.body_html(0).map(|h| {
        h.replace("&#x2f;", "/")
            .replace("&amp;", "&")
            .replace("&#x3d;", "=")
    }));
    let mut found: Vec<String> = bodies
        .iter()
        .flat_map(|body| body.split(['"', ' ', '\n', '\r', '<', '>']))
        .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
        .map(str::to_owned)
        .collect();
    found.extend(
        message
            .header_raw("List-Unsubscribe")
            .map(|h| h.trim().trim_matches(|c| c == '<' || c == '>').to_owned()),
    );
    found.sort();
    found.dedup();
    found
}

/// The answer link for one NPS score or goal answer in a message.
/// The answer page of the link in `raw` ending in `suffix`: the link without its query.
pub fn page_with(raw: &str, suffix: &str) -> String {
    let link = link_with(raw, suffix);
    link.split('?').next().expect("a path").to_owned()
}

pub fn link_with(raw: &str, suffix: &str) -> String {
    links(raw)
        .into_iter()
        .find(|l| l.ends_with(suffix))
        .unwrap_or_else(|| panic!("a link ending in {suffix}"))
}

fn goal_emails(report: &CycleReport) -> Vec<String> {
    let surveys = report.surveys.as_ref().expect("a survey step");
    surveys
        .send
        .iter()
        .filter(|e| e.survey == SurveyKind::Goal)
        .map(|e| e.key.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn month_end_and_leap_day_contracts_are_due_on_the_last_day_of_february() {
    let h = Harness::start(&[]).await;

    let before = h.plan("2025-02-27T10:00:00Z").await;
    assert!(
        goal_emails(&before).is_empty(),
        "{:?}",
        goal_emails(&before)
    );

    let due = h.plan("2025-02-28T10:00:00Z").await;
    let surveys = due.surveys.as_ref().expect("a survey step");
    let goal: Vec<(&str, &str, String)> = surveys
        .send
        .iter()
        .filter(|e| e.survey == SurveyKind::Goal)
        .map(|e| (e.account_id.as_str(), e.wave.as_str(), e.due_on.to_string()))
        .collect();
    assert!(
        goal.contains(&("A-end", "6m", "2025-02-28".into())),
        "{goal:?}"
    );
    assert!(
        goal.contains(&("A-leap", "12m", "2025-02-28".into())),
        "{goal:?}"
    );
    let leap = surveys
        .send
        .iter()
        .find(|e| e.account_id == "A-leap")
        .expect("A-leap");
    assert!(leap.why.contains("Mars/Base"), "{}", leap.why);
    assert_eq!(leap.zone, "UTC");

    // Six months on, each wave is computed from the OCD again: 31 August and 29 August.
    let later = h.plan("2025-09-01T10:00:00Z").await;
    let waves: Vec<(String, String)> = later
        .surveys
        .expect("a survey step")
        .send
        .iter()
        .filter(|e| e.survey == SurveyKind::Goal)
        .map(|e| (e.account_id.clone(), e.due_on.to_string()))
        .collect();
    assert!(
        waves.contains(&("A-end".into(), "2025-08-31".into())),
        "{waves:?}"
    );
    assert!(
        waves.contains(&("A-leap".into(), "2025-08-29".into())),
        "{waves:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wave_goes_out_exactly_once_across_reruns_and_a_restart() {
    let h = Harness::start(&[]).await;

    let first = h.cycle(MONDAY).await;
    let sent = first.surveys.as_ref().expect("a survey step").sent;
    assert!(
        sent >= 3,
        "zoe, leap and later at least: {:?}",
        first.surveys
    );
    let delivered = h.smtp.received().len();

    // A re-run, then a "restart": a new store handle on the same file, as a new process has.
    h.cycle(MONDAY).await;
    let reopened = Store::open(&h.app.settings.store).await.expect("reopens");
    drop(reopened);
    h.cycle("2025-03-03T11:00:00Z").await;
    assert_eq!(h.smtp.received().len(), delivered, "nothing was sent twice");
    assert_eq!(h.messages_to("zoe@example.com").len(), 1);
    assert_eq!(h.messages_to("leap@example.com").len(), 1);

    // A crash after the message left but before `sent` was recorded: never re-sent blindly.
    let key = "goal:6m:A-end:P-zoe";
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", h.app.settings.store.path.display()))
            .await
            .expect("the store opens");
    sqlx::query("UPDATE survey_outbox SET state = 'sending' WHERE key = $1")
        .bind(key)
        .execute(&pool)
        .await
        .expect("updated");
    let after_crash = h.cycle("2025-03-03T12:00:00Z").await;
    let surveys = after_crash.surveys.expect("a survey step");
    assert!(
        surveys.in_sending.iter().any(|r| r.key == key),
        "listed for an operator"
    );
    assert_eq!(h.messages_to("zoe@example.com").len(), 1);

    // The operator checks the relay's log and settles it; still one email.
    let store = h.app.store().await;
    let settled = store
        .resolve(key, Resolution::Sent, at("2025-03-03T12:30:00Z"))
        .await
        .expect("resolved");
    assert_eq!(settled, Settled::Done);
    h.cycle("2025-03-03T13:00:00Z").await;
    assert_eq!(h.messages_to("zoe@example.com").len(), 1);
    assert_eq!(h.rows().await[key].state, "sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planned_email_left_by_a_stopped_run_goes_out_on_the_next_one() {
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let key = "goal:12m:A-leap:P-leap";
    assert_eq!(h.rows().await[key].state, "sent");

    // The state a stop between "recorded" and "sent" leaves (the server never saw it).
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", h.app.settings.store.path.display()))
            .await
            .expect("the store opens");
    sqlx::query("UPDATE survey_outbox SET state = 'planned', sent_at = NULL WHERE key = $1")
        .bind(key)
        .execute(&pool)
        .await
        .expect("updated");
    let before = h.messages_to("leap@example.com").len();

    h.cycle("2025-03-04T10:00:00Z").await;
    h.cycle("2025-03-04T11:00:00Z").await;

    assert_eq!(h.messages_to("leap@example.com").len(), before + 1);
    assert_eq!(h.rows().await[key].state, "sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn suppressed_opted_out_invalid_and_bounced_addresses_get_nothing() {
    let h = Harness::start(&[]).await;
    h.smtp.reply_to_rcpt(
        "bounce@example.com",
        "550 5.1.1 <bounce@example.com>: no such user",
    );

    let report = h.cycle(MONDAY).await;
    let surveys = report.surveys.expect("a survey step");
    let why = |contact: &str| -> String {
        surveys
            .held
            .iter()
            .filter(|h| h.contact_id.as_deref() == Some(contact))
            .map(|h| h.why.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(why("P-opt").contains("opted out"), "{}", why("P-opt"));
    assert!(why("P-bad").contains("not valid"), "{}", why("P-bad"));
    assert!(why("P-zoe2").contains("same address"), "{}", why("P-zoe2"));
    assert!(
        why("P-old").is_empty() && why("P-gone").is_empty(),
        "history gets nothing"
    );
    for address in ["opt@example.com", "old@example.com", "gone@example.com"] {
        assert!(h.messages_to(address).is_empty(), "{address}");
    }

    // The hard bounce: final, and the address is suppressed.
    assert_eq!(h.smtp.refused(), ["bounce@example.com"]);
    let rows = h.rows().await;
    let bounced = &rows["goal:6m:A-end:P-bounce"];
    assert_eq!(bounced.state, "failed_permanent");
    assert!(
        bounced
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("550"))
    );
    assert!(
        !bounced
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("bounce@example.com")
    );
    let store = h.app.store().await;
    let history = store.survey_history(at(MONDAY)).await.expect("history");
    let reason = history
        .suppressed
        .get("bounce@example.com")
        .expect("suppressed");
    assert!(reason.starts_with("hard bounce"), "{reason}");

    // One-click unsubscribe (RFC 8058) from Zoë's email: her address gets nothing more.
    let raw = h.last_message_to("zoe@example.com");
    assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    let url = links(&raw)
        .into_iter()
        .find(|l| l.contains("/u/"))
        .expect("an unsubscribe link");
    let (status, _) = h.post(&url, &[("List-Unsubscribe", "One-Click")]).await;
    assert_eq!(status, 200);
    let history = store.survey_history(at(MONDAY)).await.expect("history");
    assert_eq!(
        history
            .suppressed
            .get("zoe@example.com")
            .map(String::as_str),
        Some("unsubscribed")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_temporary_failure_is_retried_later_and_a_permanent_one_is_final() {
    let h = Harness::start(&[]).await;
    let key = "goal:6m:A-end:P-later";
    h.smtp
        .reply_to_rcpt("later@example.com", "451 4.3.0 try again later");

    h.cycle(MONDAY).await;
    let row = h.rows().await[key].clone();
    assert_eq!(row.state, "failed_transient");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.next_attempt_at.as_deref(), Some("2025-03-03T10:01:00Z"));

    // Before its retry time, nothing is attempted.
    let early = h.cycle("2025-03-03T10:00:30Z").await;
    let held = &early.surveys.expect("a survey step").held;
    assert!(
        held.iter().any(|x| x.why.contains("temporary failure")),
        "{held:?}"
    );
    assert_eq!(h.smtp.refused().len(), 1);

    // The retry meets a permanent refusal that is not about the mailbox: final, not a bounce.
    h.smtp
        .reply_to_rcpt("later@example.com", "554 5.7.1 rejected by policy");
    h.cycle("2025-03-03T10:02:00Z").await;
    let row = h.rows().await[key].clone();
    assert_eq!(row.state, "failed_permanent");
    assert_eq!(row.attempts, 2);
    assert!(row.last_error.as_deref().is_some_and(|e| e.contains("554")));
    let store = h.app.store().await;
    let history = store.survey_history(at(MONDAY)).await.expect("history");
    assert!(!history.suppressed.contains_key("later@example.com"));

    h.cycle("2025-03-03T12:00:00Z").await;
    assert_eq!(
        h.smtp.refused().len(),
        2,
        "a final failure is not tried again"
    );
    assert!(h.messages_to("later@example.com").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_refusing_to_relay_fails_the_email_without_suppressing_the_address() {
    let h = Harness::start(&[]).await;
    let key = "goal:6m:A-end:P-later";
    h.smtp
        .reply_to_rcpt("later@example.com", "550 5.7.1 relaying denied");

    let report = h.cycle(MONDAY).await;

    let surveys = report.surveys.expect("a survey step");
    assert_eq!(surveys.bounced, 0, "{:?}", surveys.failures);
    let row = h.rows().await[key].clone();
    assert_eq!(row.state, "failed_permanent");
    assert!(
        row.last_error
            .as_deref()
            .is_some_and(|e| e.contains("5.7.1")),
        "{row:?}"
    );
    let store = h.app.store().await;
    let history = store.survey_history(at(MONDAY)).await.expect("history");
    assert!(
        !history.suppressed.contains_key("later@example.com"),
        "{:?}",
        history.suppressed
    );
}

/// `touchpoint outbox ARGS` against the harness's store, as an operator types it.
fn outbox_command(h: &Harness, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"))
        .arg("outbox")
        .args(args)
        .env("TOUCHPOINT__STORE__PATH", &h.app.settings.store.path)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn emails_a_relay_refused_for_want_of_a_login_go_out_once_an_operator_retries_them() {
    let h = Harness::start(&[]).await;
    let refused = ["zoe@example.com", "leap@example.com", "later@example.com"];
    for address in refused {
        h.smtp
            .reply_to_rcpt(address, "530 5.7.0 Authentication required");
    }
    h.cycle(MONDAY).await;
    let failed: Vec<String> = h
        .rows()
        .await
        .into_values()
        .filter(|r| r.state == "failed_permanent")
        .map(|r| r.key)
        .collect();
    assert_eq!(failed.len(), refused.len(), "{failed:?}");

    // The relay is fixed. One email is retried alone, then the rest of its wave at once.
    for address in refused {
        h.smtp.accept_rcpt(address);
    }
    let store = h.app.store().await;
    let later = "goal:6m:A-end:P-later";
    let retry_at = at("2025-03-03T10:30:00Z");
    let one = store.resolve(later, Resolution::Retry, retry_at).await;
    assert_eq!(one.expect("resolved"), Settled::Done);
    let wave = store
        .retry_failed(Some("6m"), retry_at)
        .await
        .expect("retried");
    assert_eq!((wave.retried, wave.closed, wave.suppressed), (1, 0, 0));
    let rest = store.retry_failed(None, retry_at).await.expect("retried");
    assert_eq!(rest.retried, 1, "the 12m wave's email");
    h.cycle("2025-03-03T11:00:00Z").await;

    let rows = h.rows().await;
    for key in &failed {
        assert_eq!(rows[key].state, "sent", "{:?}", rows[key]);
    }
    for address in refused {
        assert_eq!(h.messages_to(address).len(), 1, "{address} got one email");
    }

    // Never past the grace period, and never an email that is not there.
    let late = at("2025-03-17T00:00:00Z");
    let sent = store
        .resolve(later, Resolution::Retry, late)
        .await
        .expect("read");
    assert_eq!(
        sent,
        Settled::WrongState {
            state: "sent".into()
        }
    );
    let unknown = outbox_command(
        &h,
        &["--resolve", "goal:6m:A-end:P-nobody", "--as", "retry"],
    );
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(
        said.contains("there is no survey email goal:6m:A-end:P-nobody"),
        "{said}"
    );
    assert!(!said.contains("sending state"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanently_failed_email_is_not_retried_once_its_grace_period_has_ended() {
    let h = Harness::start(&[]).await;
    let key = "goal:6m:A-end:P-later";
    h.smtp
        .reply_to_rcpt("later@example.com", "530 5.7.0 Authentication required");
    h.cycle(MONDAY).await;
    assert_eq!(h.rows().await[key].state, "failed_permanent");

    // The 6m wave was due on 28 February with 14 days' grace: today is long past it.
    let one = outbox_command(&h, &["--resolve", key, "--as", "retry"]);
    let all = outbox_command(&h, &["--retry-failed"]);

    let said = String::from_utf8_lossy(&one.stderr);
    assert!(!one.status.success());
    assert!(said.contains("grace period ended at 2025-03-14"), "{said}");
    let listed = String::from_utf8_lossy(&all.stdout);
    assert!(all.status.success(), "{all:?}");
    assert!(
        listed.contains("0 failed_permanent email(s) planned again"),
        "{listed}"
    );
    assert!(
        listed.contains("1 left failed: their wave's grace period has ended"),
        "{listed}"
    );
    assert_eq!(h.rows().await[key].state, "failed_permanent");
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_is_required_by_default() {
    let h = Harness::start(&[("TOUCHPOINT__MAIL__SMTP__TLS", "starttls")]).await;
    h.cycle(MONDAY).await;
    assert!(
        h.smtp.received().is_empty(),
        "nothing crossed in plain text"
    );
    let rows = h.rows().await;
    let row = &rows["goal:6m:A-end:P-zoe"];
    assert_eq!(row.state, "failed_transient", "{row:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_ascii_name_is_encoded_in_the_display_name_and_subject() {
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let raw = h.last_message_to("zoe@example.com");

    let headers = raw.split("\r\n\r\n").next().expect("headers");
    assert!(headers.is_ascii(), "headers are 7-bit: {headers}");
    let to = headers
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("a To header");
    assert!(
        to.contains("=?utf-8?b?") || to.contains("=?utf-8?q?"),
        "{to}"
    );
    let subject: String = headers
        .split("\r\nSubject:")
        .nth(1)
        .expect("a Subject header")
        .split("\r\n")
        .take_while(|l| !l.contains(':') || l.starts_with(' '))
        .collect();
    assert!(subject.contains("=?utf-8?"), "{subject}");

    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .expect("parses");
    let name = message.to().and_then(|a| a.first()).and_then(|a| a.name());
    assert_eq!(name, Some("Zoë Ångström-Núñez"));
    assert_eq!(
        message.subject(),
        Some("Zoë Ångström-Núñez, did Month End <Corp> reach its goals with our product?")
    );
    let html = message.body_html(0).expect("an HTML part");
    assert!(
        html.contains("Month End &lt;Corp&gt;"),
        "CRM values are escaped"
    );
    assert!(message.message_id().is_some_and(|id| id.starts_with("tp.")));
    let rows = h.rows().await;
    let recorded = rows["goal:6m:A-end:P-zoe"].message_id.clone();
    assert_eq!(recorded.as_deref(), message.message_id());
}

#[tokio::test(flavor = "multi_thread")]
async fn line_breaks_and_nul_in_crm_names_are_dropped_and_the_emails_still_go() {
    let header = CONTACTS.lines().next().expect("a header");
    let tail = "executive_sponsor,,false,,false,2024-01-01T00:00:00Z";
    let contacts = format!(
        "{header}\n\
         P-crlf,A-end,crlf@example.com,\"Zoe\r\nBcc: eve@example.net\",{tail}\n\
         P-nul,A-leap,nul@example.com,\"Lea\u{0}Leap\u{7}\",{tail}\n"
    );
    let h = Harness::with_book(ACCOUNTS, &contacts, &[]).await;

    let report = h.cycle(MONDAY).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.reason);
    let rows = h.rows().await;
    for (key, address, shown) in [
        (
            "goal:6m:A-end:P-crlf",
            "crlf@example.com",
            "Zoe Bcc: eve@example.net",
        ),
        ("goal:12m:A-leap:P-nul", "nul@example.com", "LeaLeap"),
    ] {
        assert_eq!(rows[key].state, "sent", "{:?}", rows[key]);
        let raw = h.last_message_to(address);
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("parses");
        let to = message.to().and_then(|a| a.first());
        assert_eq!(to.and_then(|a| a.name()), Some(shown));
        assert_eq!(to.and_then(|a| a.address()), Some(address));
        assert!(message.bcc().is_none(), "no header was injected");
    }
    let received = h.smtp.received();
    assert!(
        received.iter().all(|m| m.recipients.len() == 1),
        "each email went to its contact alone: {received:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_scanner_that_opens_every_link_records_nothing() {
    let contacts = format!("{CONTACTS}{}", nps_contact());
    let h = Harness::with_book(ACCOUNTS, &contacts, &[]).await;
    h.cycle(MONDAY).await;

    let mut opened = 0;
    for raw in h.smtp.received().iter().map(|m| m.data.clone()) {
        for link in links(&raw) {
            let (status, _) = h.get(&link).await;
            assert_eq!(status, 200, "{link}");
            opened += 1;
        }
    }
    assert!(
        opened >= 20,
        "every score, answer and unsubscribe link: {opened}"
    );

    let store = h.app.store().await;
    let answers = store
        .answers_since(at("2000-01-01T00:00:00Z"))
        .await
        .expect("answers");
    assert!(answers.is_empty(), "a GET records no answer: {answers:?}");
    let history = store.survey_history(at(MONDAY)).await.expect("history");
    assert!(history.suppressed.is_empty(), "a GET unsubscribes nobody");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_or_expired_token_changes_nothing() {
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let raw = h.last_message_to("leap@example.com");
    let page = page_with(&raw, "?achieved=yes");

    // One character of the signature changed.
    let mut tampered = page.clone();
    let last = tampered.pop().expect("a character");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = h.post(&tampered, &[("achieved", "yes")]).await;
    assert_eq!(status, 400);
    assert!(body.contains("Nothing was recorded"), "{body}");
    let (status, _) = h
        .post(&format!("{}/s/not-a-token", h.web), &[("achieved", "yes")])
        .await;
    assert_eq!(status, 400);

    // The genuine link, after its 30 days.
    h.set_clock("2025-04-02T10:00:01Z");
    let (status, _) = h.post(&page, &[("achieved", "yes")]).await;
    assert_eq!(status, 410);

    let store = h.app.store().await;
    let answers = store
        .answers_since(at("2000-01-01T00:00:00Z"))
        .await
        .expect("answers");
    assert!(answers.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_comment_with_html_is_stored_as_written_and_shown_escaped() {
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let raw = h.last_message_to("leap@example.com");
    let page = page_with(&raw, "?achieved=no");
    let comment = "<script>alert('x')</script> & <b>more</b>";

    let (status, body) = h
        .post(
            &page,
            &[
                ("achieved", "no"),
                ("goal", "<i>faster</i>"),
                ("comment", comment),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt; &amp; &lt;b&gt;")
    );

    let store = h.app.store().await;
    let answer = store
        .answer("goal:12m:A-leap:P-leap")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(answer.comment.as_deref(), Some(comment));
    assert_eq!(answer.goal.as_deref(), Some("<i>faster</i>"));

    // A second answer replaces the first; the page shows the earlier one escaped meanwhile.
    let (_, again) = h.get(&page).await;
    assert!(again.contains("You answered on 2025-03-03"));
    assert!(again.contains("&lt;script&gt;") && !again.contains("<script>alert"));
    h.post(&page, &[("achieved", "yes")]).await;
    let answer = store
        .answer("goal:12m:A-leap:P-leap")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!((answer.goal_achieved, answer.comment), (Some(true), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nul_in_a_comment_is_removed_and_the_rest_of_the_comment_kept() {
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let raw = h.last_message_to("leap@example.com");
    let page = page_with(&raw, "?achieved=no");

    let (status, body) = h
        .post(
            &page,
            &[
                ("achieved", "no"),
                (
                    "comment",
                    "Exports fail\u{0} every Monday\nsince March\u{1b}",
                ),
            ],
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Exports fail every Monday"), "{body}");
    let store = h.app.store().await;
    let answer = store
        .answer("goal:12m:A-leap:P-leap")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        answer.comment.as_deref(),
        Some("Exports fail every Monday\nsince March")
    );
}

/// A champion of A-leap whose NPS day is open on Monday 3 March (and no goal survey).
fn nps_contact() -> String {
    let id = (0..)
        .map(|n| format!("P-nps-{n}"))
        .find(|id| {
            let contact = touchpoint::model::ContactId::parse(id).expect("an id");
            (48..=60).contains(&touchpoint::surveys::cadence::nps_day_of_quarter(&contact))
        })
        .expect("some id");
    format!("{id},A-leap,nps@example.com,Nat Promo,champion,,false,,false,2024-01-01T00:00:00Z\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_through_the_pages_turn_roi_green_reach_the_crm_and_open_tasks() {
    let contacts = format!("{CONTACTS}{}", nps_contact());
    let h = Harness::with_book(ACCOUNTS, &contacts, &[]).await;
    let first = h.cycle(MONDAY).await;
    let roi = |report: &CycleReport, account: &str| {
        let scored = report
            .accounts
            .iter()
            .find(|a| a.account_id == account)
            .expect("scored");
        scored.current.measures[3].to_string()
    };
    assert_eq!(roi(&first, "A-leap"), "na");

    // Lea answers the goal survey: achieved.
    h.set_clock("2025-03-03T15:00:00Z");
    let raw = h.last_message_to("leap@example.com");
    let page = page_with(&raw, "?achieved=yes");
    let (status, _) = h
        .post(&page, &[("achieved", "yes"), ("goal", "fewer tickets")])
        .await;
    assert_eq!(status, 200);

    let next = h.cycle("2025-03-04T10:00:00Z").await;
    assert_eq!(roi(&next, "A-leap"), "green");
    let store = h.app.store().await;
    let explained = store
        .explain("A-leap")
        .await
        .expect("read")
        .expect("scored");
    let receipt = explained.receipt.to_string();
    let response_id = touchpoint::surveys::answers::response_id("goal:12m:A-leap:P-leap");
    assert!(receipt.contains(&response_id), "{receipt}");
    assert!(
        receipt.contains("goal achieved, reported on 2025-03-03"),
        "{receipt}"
    );

    // The answer reached the CRM under its stable id.
    let pushed: Vec<_> = h
        .app
        .crm
        .writes()
        .into_iter()
        .filter(|w| w.path == format!("/v1/survey-responses/{response_id}"))
        .collect();
    assert_eq!(pushed.len(), 1, "{pushed:?}");

    // The CRM now returns it too; it is still one answer.
    let third = h.cycle("2025-03-05T10:00:00Z").await;
    assert_eq!(roi(&third, "A-leap"), "green");
    let explained = store
        .explain("A-leap")
        .await
        .expect("read")
        .expect("scored");
    let answers = explained.receipt.to_string().matches(&response_id).count();
    assert_eq!(answers, 1, "counted once");

    // Nat answers the NPS with a 3: a detractor task for the account owner, on the next cycle.
    let raw = h.last_message_to("nps@example.com");
    let page = page_with(&raw, "?score=3");
    let (status, _) = h
        .post(&page, &[("score", "3"), ("comment", "Exports fail")])
        .await;
    assert_eq!(status, 200);
    h.cycle("2025-03-06T10:00:00Z").await;
    let tasks = h.app.crm.tasks();
    let detractor = tasks
        .iter()
        .find(|t| {
            t["account_id"] == "A-leap"
                && t["key"].as_str().is_some_and(|k| k.contains("detractor"))
        })
        .unwrap_or_else(|| panic!("a detractor task: {tasks:?}"));
    assert_eq!(detractor["priority"], "high");
    assert!(
        detractor["body"]
            .as_str()
            .is_some_and(|b| b.contains("Exports fail"))
    );
}

/// Twelve accounts whose goal wave is due on 1 March 2025, each with a sponsor.
fn twelve_accounts() -> (String, String) {
    let mut accounts = ACCOUNTS.lines().next().expect("a header").to_owned() + "\n";
    let mut contacts = CONTACTS.lines().next().expect("a header").to_owned() + "\n";
    for n in 0..12 {
        accounts.push_str(&format!(
            "A-{n:02},Account {n},,O-1,true,2024-09-01,Europe/London,false,2024-12-01T00:00:00Z\n"
        ));
        contacts.push_str(&format!(
            "P-{n:02},A-{n:02},person{n}@example.com,Person {n},executive_sponsor,,false,,false,\
             2024-01-01T00:00:00Z\n"
        ));
    }
    (accounts, contacts)
}

/// `touchpoint cycle` as a separate process, configured like the harness.
fn cycle_process(h: &Harness) -> std::process::Command {
    let settings = &h.app.settings;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_touchpoint"));
    command
        .args(["cycle", "--as-of", "2025-03-03", "--act-on-past"])
        .env("TOUCHPOINT__SOURCE__BASE_URL", h.app.crm.base_url())
        .env("TOUCHPOINT__STORE__PATH", &settings.store.path)
        .env("TOUCHPOINT__SURVEYS__ENABLED", "true")
        .env(
            "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
            "mon,tue,wed,thu,fri,sat,sun",
        )
        .env("TOUCHPOINT__SURVEYS__SEND_WINDOW__START", "00:00")
        .env("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00")
        .env("TOUCHPOINT__WEB__BASE_URL", &h.web)
        .env("TOUCHPOINT__TASKS__ENABLED", "false")
        .env("TOUCHPOINT_SOURCE_TOKEN", TOKEN)
        .env("TOUCHPOINT_LINK_SECRET", SECRET)
        .env_remove("TOUCHPOINT_SMTP_USERNAME")
        .env_remove("TOUCHPOINT_SMTP_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, value) in h.smtp.settings() {
        command.env(key, value);
    }
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_killed_while_sending_and_run_again_never_sends_a_wave_twice() {
    let (accounts, contacts) = twelve_accounts();
    let h = Harness::with_book(&accounts, &contacts, &[]).await;
    h.smtp.delay_data(std::time::Duration::from_millis(200));

    // Kill the process (SIGKILL: no clean-up at all) once a few emails are through.
    let mut child = cycle_process(&h).spawn().expect("touchpoint starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while h.smtp.received().len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().expect("killed");
    child.wait().expect("reaped");
    let at_kill = h.smtp.received().len();
    assert!(
        (3..12).contains(&at_kill),
        "killed mid-cycle: {at_kill} delivered"
    );

    // Run again, to the end, as a new process.
    h.smtp.delay_data(std::time::Duration::ZERO);
    let status = cycle_process(&h).status().expect("touchpoint runs");
    assert!(status.success());

    let mut per_address: HashMap<String, usize> = HashMap::new();
    for message in h.smtp.received() {
        for recipient in message.recipients {
            *per_address.entry(recipient).or_default() += 1;
        }
    }
    assert!(per_address.values().all(|n| *n == 1), "{per_address:?}");
    let rows = h.rows().await;
    let goal: Vec<&OutboxRow> = rows.values().filter(|r| r.survey == "goal").collect();
    assert_eq!(goal.len(), 12, "every due email is in the outbox");
    for row in goal {
        let n: u32 = row.contact_id[2..].parse().expect("P-nn");
        let delivered = per_address.contains_key(&format!("person{n}@example.com"));
        match row.state.as_str() {
            "sent" => assert!(delivered, "{row:?}"),
            // Stopped between handing it over and hearing back: left for an operator.
            "sending" => {}
            other => panic!("{} ended {other}", row.key),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_a_cycle_at_a_safe_point_and_the_next_one_sends_the_rest() {
    let (accounts, contacts) = twelve_accounts();
    let h = Harness::with_book(&accounts, &contacts, &[]).await;
    h.smtp.delay_data(std::time::Duration::from_millis(300));

    let mut child = cycle_process(&h).spawn().expect("touchpoint starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while h.smtp.received().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let interrupt = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupt.success());
    child.wait().expect("it ends");

    let at_stop = h.smtp.received().len();
    assert!(at_stop < 12, "stopped mid-send: {at_stop} delivered");
    let rows = h.rows().await;
    assert_every_delivery_recorded(&h, &rows);
    let store = h.app.store().await;
    let runs = store.recent_runs(5).await.expect("the runs");
    assert!(runs.iter().all(|run| run.status != "running"), "{runs:?}");
    assert_eq!(runs[0].status, "partial", "{runs:?}");
    let reason = runs[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("stay planned"), "{runs:?}");
    assert!(
        store
            .lease_holder("scheduler")
            .await
            .expect("read")
            .is_none(),
        "the lease is given up"
    );

    h.smtp.delay_data(std::time::Duration::ZERO);
    assert!(
        cycle_process(&h)
            .status()
            .expect("touchpoint runs")
            .success()
    );
    let rows = h.rows().await;
    assert_every_delivery_recorded(&h, &rows);
    let goal_sent = rows
        .values()
        .filter(|r| r.survey == "goal" && r.state == "sent")
        .count();
    assert_eq!(
        goal_sent, 12,
        "the rest went out on the next cycle, once each"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_that_loses_its_lease_stops_sending() {
    let (accounts, contacts) = twelve_accounts();
    let h = Harness::with_book(&accounts, &contacts, &[]).await;
    h.smtp.delay_data(std::time::Duration::from_millis(1500));

    let child = cycle_process(&h)
        .env("TOUCHPOINT__DAEMON__LEASE__TTL_SECS", "4")
        .env("TOUCHPOINT__DAEMON__LEASE__RENEW_EVERY_SECS", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("touchpoint starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while h.smtp.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Another instance takes the lease, as one would after this process had been suspended
    // past its expiry.
    let pool = h.app.raw_store().await;
    sqlx::query("UPDATE scheduler_lease SET holder = 'another:1:00000000'")
        .execute(&pool)
        .await
        .expect("the lease changes hands");
    let output = child.wait_with_output().expect("it ends");

    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("lost the scheduler lease"), "{said}");
    let delivered = h.smtp.received().len();
    assert!(delivered < 12, "it stopped sending: {delivered} delivered");
    let rows = h.rows().await;
    assert_every_delivery_recorded(&h, &rows);
    let holder = h.app.store().await.lease_holder("scheduler").await;
    let (holder, _) = holder.expect("read").expect("still held");
    assert_eq!(holder, "another:1:00000000", "the lease is not taken back");
    let runs = h.app.store().await.recent_runs(1).await.expect("the runs");
    let reason = runs[0].reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("lost the scheduler lease"), "{runs:?}");
}

/// The Message-ID of each message the SMTP server accepted, without angle brackets.
fn delivered_ids(h: &Harness) -> Vec<String> {
    h.smtp
        .received()
        .iter()
        .filter_map(|m| {
            let parsed = mail_parser::MessageParser::default().parse(m.data.as_bytes())?;
            parsed.message_id().map(str::to_owned)
        })
        .collect()
}

/// Every delivered message is recorded `sent`, once; nothing is left in `sending`.
fn assert_every_delivery_recorded(h: &Harness, rows: &HashMap<String, OutboxRow>) {
    let delivered = delivered_ids(h);
    let mut seen = std::collections::HashSet::new();
    for id in &delivered {
        assert!(seen.insert(id.clone()), "{id} delivered twice");
        let row = rows
            .values()
            .find(|r| r.message_id.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} is in the outbox"));
        assert_eq!(row.state, "sent", "{row:?}");
    }
    let sending: Vec<&String> = rows
        .values()
        .filter(|r| r.state == "sending")
        .map(|r| &r.key)
        .collect();
    assert!(sending.is_empty(), "stranded in sending: {sending:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_error_while_sending_lets_the_sends_in_flight_finish_and_be_recorded() {
    let (accounts, contacts) = twelve_accounts();
    let h = Harness::with_book(&accounts, &contacts, &[]).await;
    // Person 1's email (second in line) is still with the server when the store refuses to
    // mark person 5's as sending.
    h.smtp
        .delay_data_to("person1@example.com", std::time::Duration::from_secs(1));
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", h.app.settings.store.path.display()))
            .await
            .expect("the store opens");
    h.app.store().await;
    sqlx::query(
        "CREATE TRIGGER refuse_one BEFORE UPDATE OF state ON survey_outbox
         WHEN NEW.state = 'sending' AND OLD.key = 'goal:6m:A-05:P-05'
         BEGIN SELECT RAISE(ABORT, 'the store refuses writes'); END",
    )
    .execute(&pool)
    .await
    .expect("the trigger is created");

    let error = h.try_cycle(MONDAY).await.expect_err("the store failed");

    assert!(format!("{error:#}").contains("refuses writes"), "{error:#}");
    let rows = h.rows().await;
    assert_eq!(
        rows["goal:6m:A-01:P-01"].state, "sent",
        "the slow send was drained"
    );
    assert_eq!(rows["goal:6m:A-05:P-05"].state, "planned");
    assert_every_delivery_recorded(&h, &rows);
    let runs = h.app.store().await.recent_runs(1).await.expect("runs");
    assert_eq!(runs[0].status, "failed");

    // With the store healthy again, the rest go out, and nothing twice.
    sqlx::query("DROP TRIGGER refuse_one")
        .execute(&pool)
        .await
        .expect("dropped");
    h.cycle("2025-03-03T11:00:00Z").await;
    let rows = h.rows().await;
    assert_every_delivery_recorded(&h, &rows);
    assert_eq!(delivered_ids(&h).len(), 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_asked_mid_send_hands_no_new_email_to_the_mailer_and_the_rest_go_next_run() {
    let (accounts, contacts) = twelve_accounts();
    let h = Harness::with_book(&accounts, &contacts, &[]).await;
    h.smtp.delay_data(std::time::Duration::from_millis(300));
    let settings = &h.app.settings;
    let client = RestClient::new(&settings.source, SecretString::from(TOKEN)).expect("a client");
    let delivery = Delivery::new(settings, Some(signer())).expect("the mail backend");
    let store = h.app.store().await;
    let stop = CancellationToken::new();
    let cycle = Cycle {
        settings,
        source: &client,
        crm: Some(&client),
        store: Some(&store),
        delivery: Some(&delivery),
        command: "cycle",
        stop: Some(&stop),
        replay: false,
    };

    // Ask to stop once the first email is through; the others in flight still finish.
    let ask = async {
        while h.smtp.received().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        stop.cancel();
    };
    let (report, ()) = tokio::join!(cycle.run(at(MONDAY), Mode::Act), ask);

    let report = report.expect("the cycle ends with a report");
    let surveys = report.surveys.as_ref().expect("a survey step");
    let delivered = h.smtp.received().len();
    assert!(delivered < 12, "sending stopped: {delivered} delivered");
    assert_eq!(surveys.sent, delivered, "every email in flight is recorded");
    assert_eq!(surveys.not_sent, 12 - delivered, "{surveys:?}");
    let reason = report.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("stay planned for the next run"), "{reason}");
    let rows = h.rows().await;
    assert_every_delivery_recorded(&h, &rows);
    let planned = rows.values().filter(|r| r.state == "planned").count();
    assert_eq!(planned, 12 - delivered, "{rows:?}");

    // The next run sends the rest, each once.
    h.smtp.delay_data(std::time::Duration::ZERO);
    h.cycle("2025-03-03T11:00:00Z").await;
    assert_every_delivery_recorded(&h, &h.rows().await);
    assert_eq!(delivered_ids(&h).len(), 12);
}
