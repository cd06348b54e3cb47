//! Follow-up tasks against the sandbox CRM: one open task per account and reason, through
//! re-runs, lost answers, closings and cool-downs.

use std::collections::HashMap;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use secrecy::SecretString;
use serde_json::{Value, json};
use touchpoint::cli::{Secrets, cycle_with_secrets};
use touchpoint::cycle::{CycleReport, Mode};
use touchpoint::sandbox::Faults;
use touchpoint::store::RunStatus;
use touchpoint::surveys::token::LinkSigner;
use touchpoint::tasks::BREAKER_FLAG;

use crate::helpers::{App, TOKEN, start_of};

const BEFORE: &str = "2025-03-03";
const AFTER: &str = "2025-06-02";

/// Generous breaker limits, so tests about other rules are not held by it.
const NO_BREAKER: [(&str, &str); 2] = [
    ("TOUCHPOINT__TASKS__BREAKER__MAX_RED_SHARE", "1.0"),
    ("TOUCHPOINT__TASKS__BREAKER__MIN_ACCOUNTS", "100000"),
];

fn tasks_by_account(app: &App, reason: &str) -> HashMap<String, Vec<Value>> {
    let mut by_account: HashMap<String, Vec<Value>> = HashMap::new();
    for task in app.crm.tasks() {
        let key = task["key"].as_str().unwrap_or_default();
        if key.contains(&format!(":{reason}:")) {
            let account = task["account_id"].as_str().unwrap_or_default().to_owned();
            by_account.entry(account).or_default().push(task);
        }
    }
    by_account
}

/// Checks, from the sandbox CRM's own task list, that no account has two open tasks for one
/// reason (the reason is the second part of touchpoint's keys, `touchpoint:<reason>:...`).
/// Returns how many tasks are open.
fn assert_one_open_task_per_account_and_reason(app: &App) -> usize {
    let mut open: HashMap<(String, String), Vec<String>> = HashMap::new();
    for task in app
        .crm
        .tasks()
        .into_iter()
        .filter(|t| t["status"] == "open")
    {
        let key = task["key"].as_str().unwrap_or_default().to_owned();
        let reason = key.split(':').nth(1).unwrap_or_default().to_owned();
        let account = task["account_id"].as_str().unwrap_or_default().to_owned();
        open.entry((account, reason)).or_default().push(key);
    }
    let doubled: Vec<_> = open.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "two open tasks for one reason: {doubled:?}"
    );
    open.len()
}

fn turned_red(report: &CycleReport) -> Vec<String> {
    report
        .accounts
        .iter()
        .filter(|a| a.turned_red)
        .map(|a| a.account_id.clone())
        .collect()
}

async fn crm_get(app: &App, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/{path}", app.crm.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the sandbox answers")
        .json()
        .await
        .expect("JSON")
}

/// Records an NPS answer in the CRM, as an in-app survey would.
async fn answer(app: &App, id: &str, account: &str, score: u8, submitted_at: &str) {
    let body = json!({
        "id": id, "account_id": account, "survey": "nps", "submitted_at": submitted_at,
        "score": score, "comment": "The <b>exports</b> keep failing"
    });
    let status = reqwest::Client::new()
        .put(format!("{}/v1/survey-responses/{id}", app.crm.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the sandbox answers")
        .status();
    assert!(status.is_success(), "answer {id} stored: {status}");
}

/// The time zone of an owner, as due dates use it.
async fn owner_zone(app: &App, owner: &str) -> chrono_tz::Tz {
    let owners = crm_get(app, "v1/owners?limit=1000").await;
    owners["data"]
        .as_array()
        .expect("owners")
        .iter()
        .find(|o| o["id"] == owner)
        .and_then(|o| o["timezone"].as_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// Accounts as the CRM lists them (the first page is enough for a small book).
async fn accounts(app: &App) -> Vec<Value> {
    let page = crm_get(app, "v1/accounts?limit=1000").await;
    page["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_red_three_cycles_running_has_one_open_task() {
    let app = App::generated(300, AFTER).await.with(&NO_BREAKER);
    app.cycle(BEFORE).await;

    let first = app.cycle(AFTER).await;
    app.cycle(AFTER).await;
    app.cycle(AFTER).await;

    let reds = turned_red(&first);
    assert!(
        !reds.is_empty(),
        "some accounts turned red between the two dates"
    );
    let tasks = tasks_by_account(&app, "turned_red");
    assert_eq!(
        tasks.len(),
        reds.len(),
        "a task per account that turned red"
    );
    for account in &reds {
        assert_eq!(tasks[account].len(), 1, "{account} has exactly one task");
        let task = &tasks[account][0];
        assert_eq!(task["priority"], "medium");
        let body = task["body"].as_str().unwrap_or_default();
        assert!(
            body.contains("turned red") && body.contains("touchpoint explain"),
            "{body}"
        );
        assert_names_what_moved(&first, account, body);
    }
}

/// The body lists `measure: before -> now` for every measure whose colour changed, and no
/// other measure as moved.
fn assert_names_what_moved(report: &CycleReport, account: &str, body: &str) {
    let scored = report
        .accounts
        .iter()
        .find(|a| a.account_id == account)
        .expect("scored");
    let before = scored
        .previous
        .as_ref()
        .expect("a score before it turned red");
    let mut moved = 0;
    for (i, name) in ["deployment", "engagement", "adoption", "roi"]
        .iter()
        .enumerate()
    {
        let (was, now) = (&before.measures[i], &scored.current.measures[i]);
        if was == now {
            assert!(
                !body.contains(&format!("- {name}: ")),
                "{name} did not move: {body}"
            );
            continue;
        }
        moved += 1;
        let line = format!(
            "- {name}: {was} -> {now} (now: {})",
            scored.measure_reason(i)
        );
        assert!(body.contains(&line), "{line} in {body}");
    }
    assert!(moved > 0, "something moved: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_the_crm_created_but_we_never_heard_of_is_not_created_twice() {
    let app = App::generated(300, AFTER).await.with(&NO_BREAKER);
    app.cycle(BEFORE).await;
    let first = app.cycle(AFTER).await;
    let opened = first.tasks.as_ref().expect("a task step").opened.len();
    assert!(opened > 0);

    // The state a crash leaves between "the CRM created it" and "the ledger recorded it".
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", app.settings.store.path.display()))
            .await
            .expect("the store opens");
    sqlx::query("UPDATE tasks SET status = 'pending', opened_at = NULL, crm_id = NULL")
        .execute(&pool)
        .await
        .expect("rolled back");
    let before = app.crm.tasks().len();

    let again = app.cycle(AFTER).await;

    let tasks = again.tasks.expect("a task step");
    assert!(
        tasks.opened.is_empty(),
        "no new decision while one is pending"
    );
    assert_eq!(app.crm.tasks().len(), before, "no second task in the CRM");
    assert!(
        tasks.reconciled + tasks.already_there >= opened,
        "every pending task was matched to the CRM's: {tasks:?}"
    );
    let ledger = app.store().await.all_tasks().await.expect("the ledger");
    assert!(ledger.iter().all(|t| t.status == "open"), "{ledger:?}");

    // Even when the CRM's list does not mention them, a replayed PUT finds the same task.
    sqlx::query("UPDATE tasks SET status = 'pending'")
        .execute(&pool)
        .await
        .expect("rolled back");
    let replay = app.cycle(AFTER).await.tasks.expect("a task step");
    assert!(replay.opened.is_empty());
    assert!(replay.failures.is_empty(), "{:?}", replay.failures);
    assert!(
        replay.reconciled + replay.already_there >= opened,
        "each pending task was either read back or answered 200 by the CRM: {replay:?}"
    );
    let ledger = app.store().await.all_tasks().await.expect("the ledger");
    assert!(ledger.iter().all(|t| t.status == "open"), "{ledger:?}");
    assert_eq!(app.crm.tasks().len(), before, "still no second task");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_task_reopens_for_a_still_red_account_only_after_the_cool_down() {
    let app = App::generated(300, AFTER).await.with(&NO_BREAKER);
    app.cycle(BEFORE).await;
    let first = app.cycle(AFTER).await;
    let reds = turned_red(&first);
    for task in app.crm.tasks() {
        let key = task["key"].as_str().expect("a key");
        assert!(app.crm.set_task_status(key, "completed"));
    }

    let soon = app.cycle("2025-06-10").await;
    let later = app.cycle("2025-07-14").await;

    let still_red: Vec<&String> = reds
        .iter()
        .filter(|id| {
            [&soon, &later].iter().all(|r| {
                r.accounts
                    .iter()
                    .any(|a| &&a.account_id == id && a.current.band.as_str() == "red")
            })
        })
        .collect();
    assert!(!still_red.is_empty(), "some accounts stay red for a month");
    let soon_tasks = soon.tasks.expect("a task step");
    assert!(
        soon_tasks
            .opened
            .iter()
            .all(|t| !still_red.contains(&&t.account_id))
    );
    assert!(
        soon_tasks.reconciled >= reds.len(),
        "the closings were read back"
    );
    let tasks = tasks_by_account(&app, "turned_red");
    for account in still_red {
        assert_eq!(
            tasks[account].len(),
            2,
            "{account}: the closed task and one new one"
        );
        let open = tasks[account]
            .iter()
            .filter(|t| t["status"] == "open")
            .count();
        assert_eq!(open, 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promoter_twice_in_a_year_gets_one_review_request_and_a_detractor_a_risk_task() {
    let app = App::generated(120, AFTER).await.with(&NO_BREAKER);
    let account = accounts(&app)
        .await
        .into_iter()
        .find(|a| a["archived"] == false && !a["owner_id"].is_null())
        .expect("a live owned account");
    let id = account["id"].as_str().expect("an id");

    answer(&app, "T-PROMO-1", id, 10, "2025-05-30T10:00:00Z").await;
    answer(&app, "T-DETRACT-1", id, 3, "2025-05-31T10:00:00Z").await;
    app.cycle(AFTER).await;
    // The CSM asked for the review and closed the task; a new promoter answer comes in.
    let first_review = tasks_by_account(&app, "promoter")[id][0]["key"].clone();
    assert!(
        app.crm
            .set_task_status(first_review.as_str().expect("a key"), "completed")
    );
    answer(&app, "T-PROMO-2", id, 9, "2025-08-01T10:00:00Z").await;
    let second = app.cycle("2025-08-04").await;

    let reviews = &tasks_by_account(&app, "promoter")[id];
    assert_eq!(reviews.len(), 1, "one review request a year");
    assert_eq!(reviews[0]["kind"], "review_request");
    let skipped = serde_json::to_string(&second.tasks.expect("tasks").skipped).expect("json");
    assert!(
        skipped.contains("T-PROMO-2") && skipped.contains("already requested"),
        "{skipped}"
    );

    let risks = &tasks_by_account(&app, "detractor")[id];
    assert_eq!(risks.len(), 1);
    assert_eq!(risks[0]["priority"], "high");
    let zone = owner_zone(&app, account["owner_id"].as_str().expect("owner")).await;
    let local_day = crate::helpers::start_of(AFTER)
        .with_timezone(&zone)
        .date_naive();
    let expected = if local_day == crate::helpers::day(AFTER) {
        "2025-06-04" // Monday 2 June + 2 business days
    } else {
        "2025-06-03" // still Sunday 1 June west of UTC: Monday, then Tuesday
    };
    assert_eq!(
        risks[0]["due_date"], expected,
        "two business days in the owner's zone"
    );
    let body = risks[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("3 out of 10") && body.contains("keep failing"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn asking_all_respondents_gives_a_detractor_its_risk_task_and_a_review_request() {
    let mut settings = NO_BREAKER.to_vec();
    settings.push(("TOUCHPOINT__TASKS__PROMOTER__ALL_RESPONDENTS", "true"));
    let app = App::generated(120, AFTER).await.with(&settings);
    let account = accounts(&app)
        .await
        .into_iter()
        .find(|a| a["archived"] == false && !a["owner_id"].is_null())
        .expect("a live owned account");
    let id = account["id"].as_str().expect("an id");

    answer(&app, "T-ALL-1", id, 2, "2025-05-30T10:00:00Z").await;
    let first = app.cycle(AFTER).await;
    // The CSM asked for the review and closed the task; the account answers again later.
    let review = tasks_by_account(&app, "promoter")[id][0]["key"].clone();
    assert!(
        app.crm
            .set_task_status(review.as_str().expect("a key"), "completed")
    );
    answer(&app, "T-ALL-2", id, 4, "2025-08-01T10:00:00Z").await;
    let later = app.cycle("2025-08-04").await;

    let opened = &first.tasks.expect("a task step").opened;
    let for_answer: Vec<&str> = opened
        .iter()
        .filter(|t| t.trigger_id.starts_with("answer:T-ALL-1"))
        .map(|t| t.kind)
        .collect();
    assert_eq!(for_answer, ["risk", "review_request"], "{opened:?}");
    let reviews = &tasks_by_account(&app, "promoter")[id];
    assert_eq!(reviews.len(), 1, "one review request a year: {reviews:?}");
    assert_eq!(reviews[0]["kind"], "review_request");
    let body = reviews[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("honest review") && !body.contains("out of 10"),
        "the request does not quote the score: {body}"
    );
    assert_eq!(tasks_by_account(&app, "detractor")[id].len(), 1);
    let skipped = serde_json::to_string(&later.tasks.expect("tasks").skipped).expect("json");
    assert!(
        skipped.contains("answer:T-ALL-2:review") && skipped.contains("already requested"),
        "{skipped}"
    );
}

/// `touchpoint release-breaker`, as a person types it, against the test's store.
async fn release_breaker(app: &App) {
    let config = app.dir.path().join("release.toml");
    let store = app.settings.store.path.display().to_string();
    std::fs::write(&config, format!("[store]\npath = {store:?}\n")).expect("written");
    let config = config.display().to_string();
    let cli = touchpoint::cli::Cli::try_parse_from([
        "touchpoint",
        "--config",
        config.as_str(),
        "release-breaker",
    ])
    .expect("the command line parses");
    let code = touchpoint::cli::run(cli)
        .await
        .expect("release-breaker runs");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_holds_health_tasks_when_many_accounts_turn_red_at_once() {
    let app = App::generated(300, AFTER).await.with(&[
        ("TOUCHPOINT__TASKS__BREAKER__MAX_RED_SHARE", "0.0"),
        ("TOUCHPOINT__TASKS__BREAKER__MIN_ACCOUNTS", "1"),
    ]);
    app.cycle(BEFORE).await;

    let tripped = app.cycle(AFTER).await;
    let tripped_text =
        touchpoint::cli::render_summary(&tripped, &touchpoint::cli::Hints::for_this_process(None));

    let tasks = tripped.tasks.expect("a task step");
    let breaker = tasks.breaker.expect("breaker state");
    assert!(breaker.tripped_now && breaker.turned_red > 1);
    assert!(
        tasks_by_account(&app, "turned_red").is_empty(),
        "health tasks held"
    );
    assert_eq!(tasks.held.len(), breaker.turned_red);
    let store = app.store().await;
    assert!(store.flag(BREAKER_FLAG).await.expect("read").is_some());

    let expected = format!(
        "MASS-CHANGE BREAKER TRIPPED: {} account(s) turned red in this cycle, against a limit \
         of {}",
        breaker.turned_red, breaker.limit
    );
    assert!(tripped_text.contains(&expected), "{tripped_text}");

    let still_held = app.cycle(AFTER).await;
    let held_text = touchpoint::cli::render_summary(
        &still_held,
        &touchpoint::cli::Hints::for_this_process(None),
    );
    let expected = format!(
        "tripped on 2025-06-02 by {} accounts turning red in one cycle (limit {})",
        breaker.turned_red, breaker.limit
    );
    assert!(held_text.contains(&expected), "{held_text}");
    assert!(
        held_text.contains("0 account(s) turned red in this cycle"),
        "{held_text}"
    );
    assert!(
        still_held
            .tasks
            .expect("tasks")
            .breaker
            .expect("state")
            .tripped
    );
    assert!(
        tasks_by_account(&app, "turned_red").is_empty(),
        "held until released"
    );

    release_breaker(&app).await;
    assert!(store.flag(BREAKER_FLAG).await.expect("read").is_none());
    app.cycle(AFTER).await;
    assert_eq!(
        tasks_by_account(&app, "turned_red").len(),
        breaker.turned_red
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_without_an_active_owner_goes_to_the_fallback_owner() {
    let app = App::generated(400, AFTER).await;
    let all = accounts(&app).await;
    let owners = crm_get(&app, "v1/owners?limit=1000").await;
    let inactive: Vec<&str> = owners["data"]
        .as_array()
        .expect("owners")
        .iter()
        .filter(|o| o["active"] == false)
        .filter_map(|o| o["id"].as_str())
        .collect();
    let orphan = all
        .iter()
        .find(|a| {
            a["archived"] == false
                && (a["owner_id"].is_null()
                    || inactive.contains(&a["owner_id"].as_str().unwrap_or_default()))
        })
        .expect("the book has an account without an active owner");
    let id = orphan["id"].as_str().expect("an id");
    answer(&app, "T-ORPHAN-1", id, 2, "2025-06-01T10:00:00Z").await;

    let held = app.plan(AFTER).await;
    let held_tasks = serde_json::to_string(&held.tasks.expect("tasks").held).expect("json");
    assert!(held_tasks.contains("fallback_owner_id"), "{held_tasks}");

    let fallback = owners["data"]
        .as_array()
        .expect("owners")
        .iter()
        .find(|o| o["active"] == true)
        .and_then(|o| o["id"].as_str())
        .expect("an active owner");
    let app = app.with(&[("TOUCHPOINT__TASKS__FALLBACK_OWNER_ID", fallback)]);
    app.cycle(AFTER).await;
    let task = &tasks_by_account(&app, "detractor")[id][0];
    assert_eq!(task["owner_id"], fallback);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_cycles_through_rate_limits_and_server_errors_leave_one_open_task_per_reason() {
    let app = App::generated(300, AFTER).await.with(&NO_BREAKER);
    let account = accounts(&app)
        .await
        .into_iter()
        .find(|a| a["archived"] == false && !a["owner_id"].is_null())
        .expect("a live owned account");
    let id = account["id"].as_str().expect("an id");
    answer(&app, "T-FAULT-1", id, 1, "2025-05-30T10:00:00Z").await;
    answer(&app, "T-FAULT-2", id, 10, "2025-05-31T10:00:00Z").await;
    let baseline = app.cycle(BEFORE).await;

    app.faults(Faults {
        rate_limit_every: Some(9),
        retry_after_secs: 1,
        error_share: 0.2,
        ..Faults::default()
    });
    let mut reports = Vec::new();
    for _ in 0..3 {
        reports.push(app.cycle(AFTER).await);
    }
    app.faults(Faults::default());

    for report in &reports {
        assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.reason);
    }
    let stats = app.crm.stats();
    assert!(
        stats.rate_limited > 0 && stats.server_errors > 0,
        "{stats:?}"
    );
    let opened: usize = std::iter::once(&baseline)
        .chain(&reports)
        .map(|r| r.tasks.as_ref().map_or(0, |t| t.opened.len()))
        .sum();
    let open = assert_one_open_task_per_account_and_reason(&app);
    assert!(open > 2, "the cycles opened tasks: {open}");
    assert_eq!(open, opened, "each decision made one task");
    assert_eq!(
        app.crm.tasks().len(),
        open,
        "and no closed duplicate either"
    );
    let ledger = app.store().await.all_tasks().await.expect("the ledger");
    assert!(ledger.iter().all(|t| t.status == "open"), "{ledger:?}");
}

/// `touchpoint cycle` as a separate process against the test's sandbox and store, one task
/// write at a time so that a kill lands between two of them.
fn cycle_process(app: &App, as_of: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_touchpoint"));
    command
        .args(["cycle", "--as-of", as_of, "--act-on-past"])
        .env("TOUCHPOINT__SOURCE__BASE_URL", app.crm.base_url())
        .env("TOUCHPOINT__STORE__PATH", &app.settings.store.path)
        .env("TOUCHPOINT__SURVEYS__ENABLED", "false")
        .env("TOUCHPOINT__TASKS__CONCURRENCY", "1")
        .env("TOUCHPOINT__SOURCE__REQUESTS_PER_SECOND", "1000")
        .env("TOUCHPOINT_SOURCE_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in NO_BREAKER {
        command.env(key, value);
    }
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_killed_while_writing_tasks_and_run_again_opens_no_task_twice() {
    let app = App::generated(300, AFTER).await.with(&NO_BREAKER);
    app.cycle(BEFORE).await;
    let baseline = app.crm.tasks().len();
    app.faults(Faults {
        delay_ms: 150,
        ..Faults::default()
    });

    // Kill the process (SIGKILL: no clean-up at all) once the CRM holds a few of its tasks.
    let mut child = cycle_process(&app, AFTER)
        .spawn()
        .expect("touchpoint starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while app.crm.tasks().len() < baseline + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("killed");
    child.wait().expect("reaped");
    let at_kill = app.crm.tasks().len();
    let ledger = app.store().await.all_tasks().await.expect("the ledger");
    let pending = ledger.iter().filter(|t| t.status == "pending").count();
    assert!(
        at_kill >= baseline + 2 && pending > 0,
        "killed mid-writes: {at_kill} in the CRM ({baseline} before), {pending} pending"
    );

    app.faults(Faults::default());
    let status = cycle_process(&app, AFTER)
        .status()
        .expect("touchpoint runs");
    assert!(status.success());

    let open = assert_one_open_task_per_account_and_reason(&app);
    assert!(
        open > at_kill,
        "the second run wrote the rest: {open} after {at_kill}"
    );
    assert_eq!(app.crm.tasks().len(), open);
    let ledger = app.store().await.all_tasks().await.expect("the ledger");
    assert_eq!(ledger.len(), open, "one ledger row per CRM task");
    assert!(ledger.iter().all(|t| t.status == "open"), "{ledger:?}");
}

/// A cycle that may send survey emails (into the test's outbox folder) and open tasks.
async fn cycle_with_mail(app: &App, as_of: &str) -> CycleReport {
    let store = app.store().await;
    let secrets = Secrets {
        crm_token: Some(SecretString::from(TOKEN)),
        link_signer: Some(
            LinkSigner::new(SecretString::from(
                "tasks-test-link-secret-0123456789abcdef",
            ))
            .expect("a long enough secret"),
        ),
        act_on_past: true,
        stop: None,
    };
    cycle_with_secrets(
        &app.settings,
        Some(&store),
        "cycle",
        start_of(as_of),
        Mode::Act,
        secrets,
    )
    .await
    .expect("the cycle runs to a report")
}

fn emails_written(app: &App) -> usize {
    std::fs::read_dir(app.dir.path().join("outbox")).map_or(0, |files| files.count())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_that_fails_after_retries_opens_no_task_and_sends_no_email() {
    let app = App::generated(300, AFTER).await.with(&NO_BREAKER);
    app.cycle(BEFORE).await;
    let mut settings = NO_BREAKER.to_vec();
    settings.extend([
        ("TOUCHPOINT__SURVEYS__ENABLED", "true"),
        (
            "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
            "mon,tue,wed,thu,fri,sat,sun",
        ),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__START", "00:00"),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00"),
        ("TOUCHPOINT__SOURCE__MAX_RETRIES", "2"),
    ]);
    let app = app.with(&settings);
    let writes_before = app.crm.writes().len();
    let tasks_before = app.crm.tasks().len();

    app.faults(Faults {
        error_share: 1.0,
        ..Faults::default()
    });
    let failed = cycle_with_mail(&app, AFTER).await;
    app.faults(Faults::default());

    assert_eq!(failed.status, RunStatus::Failed);
    let reason = failed.reason.clone().expect("a reason");
    assert!(
        reason.contains("the pull failed") && reason.contains("accounts"),
        "{reason}"
    );
    assert_eq!(
        app.crm.tasks().len(),
        tasks_before,
        "no task from a failed pull"
    );
    assert_eq!(
        app.crm.writes().len(),
        writes_before,
        "nothing written to the CRM"
    );
    assert_eq!(emails_written(&app), 0, "no email from a failed pull");
    let outbox = app.store().await.outbox(&[]).await.expect("the outbox");
    assert!(outbox.is_empty(), "no email even planned: {outbox:?}");

    // The same cycle once the CRM answers does act: the failed one held it all back.
    let clean = cycle_with_mail(&app, AFTER).await;
    assert_eq!(clean.status, RunStatus::Succeeded, "{:?}", clean.reason);
    assert!(
        app.crm.tasks().len() > tasks_before,
        "the clean cycle opens tasks"
    );
    assert!(emails_written(&app) > 0, "the clean cycle sends surveys");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_whose_task_writes_failed_is_partial_and_the_next_one_writes_them() {
    let mut settings = NO_BREAKER.to_vec();
    settings.extend([
        ("TOUCHPOINT__WRITEBACK__ENABLED", "false"),
        ("TOUCHPOINT__SOURCE__MAX_RETRIES", "1"),
    ]);
    let app = App::generated(300, AFTER).await.with(&settings);
    app.cycle(BEFORE).await;
    let before = app.crm.tasks().len();

    app.faults(Faults {
        write_error_share: 1.0,
        ..Faults::default()
    });
    let failed = app.cycle(AFTER).await;
    let after_failure = app.crm.tasks().len();
    app.faults(Faults::default());
    let next = app.cycle(AFTER).await;

    let tasks = failed.tasks.as_ref().expect("a task step");
    let opened = tasks.opened.len();
    assert!(opened > 0 && tasks.confirmed == 0, "{tasks:?}");
    assert_eq!(after_failure, before, "the CRM took none of them");
    assert_eq!(failed.status, RunStatus::Partial, "{:?}", failed.reason);
    let reason = failed.reason.clone().unwrap_or_default();
    let expected = format!(
        "{opened} of {opened} task(s) not confirmed by the CRM: {opened} stay pending and are \
         written again next cycle"
    );
    assert!(reason.contains(&expected), "{reason}");

    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.reason);
    let retried = next.tasks.as_ref().expect("a task step");
    assert_eq!(retried.confirmed, opened, "the pending tasks are written");
    assert_eq!(app.crm.tasks().len(), before + opened);
    let ledger = app.store().await.all_tasks().await.expect("the ledger");
    assert!(ledger.iter().all(|t| t.status == "open"), "{ledger:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daily_limit_stops_crm_writes_for_the_cycle_and_the_next_cycle_resumes() {
    let mut settings = NO_BREAKER.to_vec();
    settings.extend([
        ("TOUCHPOINT__WRITEBACK__BATCH_SIZE", "10"),
        ("TOUCHPOINT__WRITEBACK__CONCURRENCY", "1"),
        ("TOUCHPOINT__TASKS__CONCURRENCY", "1"),
    ]);
    let app = App::generated(300, AFTER).await.with(&settings);
    app.cycle(BEFORE).await;
    let tasks_before = app.crm.tasks().len();
    let before = app.crm.stats();
    let requests = |stats: &touchpoint::sandbox::SandboxStats, endpoint: &str| {
        stats.requests.get(endpoint).copied().unwrap_or(0)
    };

    // The CRM's quota allows one more write today.
    app.faults(Faults {
        daily_write_limit: Some(1),
        retry_after_secs: 3600,
        ..Faults::default()
    });
    let limited = app.cycle(AFTER).await;
    let stats = app.crm.stats();
    let tasks_when_limited = app.crm.tasks().len();
    app.faults(Faults::default());
    let next = app.cycle(AFTER).await;

    assert_eq!(
        stats.rate_limited, 1,
        "no write after the daily limit: {stats:?}"
    );
    for endpoint in ["PUT /v1/tasks/{key}", "GET /v1/tasks"] {
        let sent = requests(&stats, endpoint) - requests(&before, endpoint);
        assert_eq!(sent, 0, "{endpoint} after the daily limit");
    }
    let health = requests(&stats, "PUT /v1/health") - requests(&before, "PUT /v1/health");
    assert_eq!(health, 2, "one batch stored, one refused, no more tried");
    assert_eq!(tasks_when_limited, tasks_before);
    assert_eq!(limited.status, RunStatus::Partial, "{:?}", limited.reason);
    let reason = limited.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("daily request limit was reached"),
        "{reason}"
    );
    let tasks = limited.tasks.as_ref().expect("a task step");
    assert!(!tasks.opened.is_empty(), "the cycle had tasks to open");
    assert_eq!(
        (tasks.failures.len(), tasks.not_sent),
        (0, tasks.opened.len())
    );
    let written = limited.writeback.as_ref().expect("a write-back");
    assert_eq!(written.stored_count, 10, "the one write the quota allowed");
    assert!(written.not_sent > 0, "{written:?}");

    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.reason);
    assert_eq!(
        next.writes_due,
        limited.writes_due - 10,
        "the rest is written now"
    );
    assert_eq!(app.crm.tasks().len(), tasks_before + tasks.opened.len());
    assert_one_open_task_per_account_and_reason(&app);
}
