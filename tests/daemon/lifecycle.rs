//! Cycles on a schedule, their traces (run history, metrics, logs), and clean stops in the
//! middle of a cycle (while it sends surveys through a loopback SMTP server, and while it
//! reads) followed by a restart that sends and writes nothing twice.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use touchpoint::sandbox::Faults;
use touchpoint::surveys::outbox::OutboxRow;

use crate::helpers::{Daemon, World, wait_for, with_status};
use crate::smtp::SmtpServer;

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_cycles_show_in_the_run_history_the_metrics_and_the_logs() {
    let world = World::new(150).await;
    let mut daemon = world.daemon(&[]).await;

    let runs = wait_for("two successful cycles", Some(&daemon), || async {
        let runs = world.runs().await;
        (with_status(&runs, &["succeeded"]).len() >= 2).then_some(runs)
    })
    .await;

    let metrics = daemon.metrics().await;
    assert_eq!(metrics.value("touchpoint_scheduler_active"), 1.0);
    assert!(metrics.value(r#"touchpoint_cycles_total{status="succeeded"}"#) >= 2.0);
    assert!(metrics.value("touchpoint_cycle_duration_seconds_count") >= 2.0);
    assert!(metrics.value("touchpoint_source_requests_total") > 0.0);
    let outbox = world.store_path().with_file_name("outbox");
    let written = std::fs::read_dir(&outbox).map_or(0, |files| files.count()) as f64;
    assert!(written > 0.0, "the scheduled cycles sent the surveys due");
    // A cycle still running may have written files it has not counted yet.
    let sent = metrics.value("touchpoint_emails_sent_total");
    assert!(
        sent > 0.0 && sent <= written,
        "{sent} counted, {written} written"
    );
    let scored = runs[0].count("scored").expect("a scored count") as f64;
    assert!(scored > 0.0);
    assert_eq!(
        metrics.sum("touchpoint_accounts"),
        scored,
        "every scored account has a band"
    );
    assert_eq!(
        metrics.types["touchpoint_cycle_duration_seconds"],
        "histogram"
    );

    let summaries: Vec<Value> = daemon
        .logs()
        .into_iter()
        .filter(|line| line["job"] == "pull_and_score" && line.get("duration_ms").is_some())
        .collect();
    assert!(summaries.len() >= 2, "{}", daemon.log_text());
    let first = &summaries[0];
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        first["run.id"],
        runs[0].id.as_str(),
        "the summary names the run"
    );

    let by_hand = world.command(&["cycle"]);
    let said = String::from_utf8_lossy(&by_hand.stderr);
    assert!(
        !by_hand.status.success(),
        "a manual cycle beside the daemon: {said}"
    );
    assert!(said.contains("is scheduling cycles"), "{said}");

    let status = daemon.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runs_command_prints_the_history_and_one_run_in_full() {
    let world = World::new(100).await;
    world.crm.set_faults(Faults {
        malformed_share: 0.05,
        ..Faults::default()
    });
    let mut daemon = world.daemon(&[]).await;
    let partial = wait_for("a partial cycle", Some(&daemon), || async {
        world
            .runs()
            .await
            .into_iter()
            .find(|run| run.status == "partial")
    })
    .await;
    assert_eq!(daemon.terminate().await.code(), Some(0));

    let listed = world.command(&["runs", "--last", "5", "--output", "json"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).expect("JSON");
    let row = listed
        .iter()
        .find(|run| run["id"] == partial.id.as_str())
        .expect("the partial run is listed");
    for field in [
        "started_at",
        "finished_at",
        "duration_ms",
        "status",
        "reason",
        "summary",
    ] {
        assert!(!row[field].is_null(), "{field} in {row}");
    }

    let table = world.command(&["runs"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(&partial.id) && table.contains("partial"),
        "{table}"
    );

    let one = world.command(&["runs", "--run", &partial.id]);
    let one = String::from_utf8_lossy(&one.stdout);
    let rejected = partial.count("rejected").expect("a rejected count");
    assert!(rejected > 0);
    assert!(
        one.contains(&format!("rejected records: {rejected}")),
        "{one}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_send_and_mid_read_exit_cleanly_and_a_restart_sends_and_writes_nothing_twice() {
    let world = World::new(200).await;
    let smtp = SmtpServer::start().await;
    let mail = smtp.settings();
    let mail: Vec<(&str, &str)> = mail.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Slow every message, so that the first cycle is surely sending when the signal comes.
    smtp.delay_data(Duration::from_millis(400));
    let mut first = world.daemon(&mail).await;
    wait_for("a few emails through", Some(&first), || async {
        (smtp.received().len() >= 3).then_some(())
    })
    .await;
    // While the emails in flight finish, the pages are still served and /readyz says why the
    // instance is not ready.
    first.ask_to_stop();
    let mut stopping = first.get("/readyz").await;
    for _ in 0..100 {
        if stopping.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stopping = first.get("/readyz").await;
    }
    assert!(stopping.1.contains("stopping"), "{stopping:?}");
    let (status, _) = first.get("/healthz").await;
    assert_eq!(
        status, 200,
        "the server still answers while the work in flight finishes"
    );
    let status = first.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{}", first.log_text());
    let runs = world.runs().await;
    assert!(with_status(&runs, &["running"]).is_empty(), "{runs:?}");
    let stopped = runs.last().expect("runs");
    let reason = stopped.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("stay planned"), "{stopped:?}");
    let rows = outbox(&world).await;
    assert!(
        rows.iter().any(|row| row.state == "planned"),
        "no email was handed over after the signal"
    );
    assert!(
        rows.iter().all(|row| row.state != "sending"),
        "the emails in flight were recorded"
    );

    // A restart sends the rest; then a stop while reading records the run as interrupted.
    smtp.delay_data(Duration::ZERO);
    let before_restart = runs.len();
    let mut second = world.daemon(&mail).await;
    wait_for("two cycles after the restart", Some(&second), || async {
        let runs = world.runs().await;
        let after = &runs[before_restart.min(runs.len())..];
        (with_status(after, &["succeeded"]).len() >= 2).then_some(())
    })
    .await;
    stop_while_reading(&world, &mut second).await;

    assert_each_due_email_delivered_once(&world, &smtp).await;
    assert_one_open_task_per_account_and_reason(&world);
    assert_no_unchanged_score_written_again(&world);
}

/// Slows the CRM, waits for a cycle to be reading, and sends SIGTERM: the run is recorded as
/// interrupted and the daemon exits 0.
async fn stop_while_reading(world: &World, daemon: &mut Daemon) {
    world.crm.set_faults(Faults {
        delay_ms: 250,
        ..Faults::default()
    });
    let slowed_at = chrono::Utc::now();
    wait_for("a slow cycle in flight", Some(daemon), || async {
        let runs = world.runs().await;
        let last = runs.last()?;
        (last.status == "running" && last.started_at > slowed_at).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = daemon.terminate().await;
    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    world.crm.set_faults(Faults::default());
    let runs = world.runs().await;
    let stopped = runs.last().expect("runs");
    assert_eq!(
        stopped.status, "interrupted",
        "stopped while reading: {stopped:?}"
    );
    assert!(with_status(&runs, &["running"]).is_empty(), "{runs:?}");
}

async fn outbox(world: &World) -> Vec<OutboxRow> {
    world.store().await.outbox(&[]).await.expect("the outbox")
}

/// No Message-ID (one per outbox key) reached the server twice, and every email the cycles
/// found due was delivered once, or is left in `sending` and listed for an operator.
async fn assert_each_due_email_delivered_once(world: &World, smtp: &SmtpServer) {
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for message in smtp.received() {
        let parsed = mail_parser::MessageParser::default()
            .parse(message.data.as_bytes())
            .expect("a parsable message");
        let id = parsed.message_id().expect("a Message-ID").to_owned();
        *delivered.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");

    let listed = world.command(&["outbox", "--state", "sending"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let rows = outbox(world).await;
    let due: Vec<&OutboxRow> = rows
        .iter()
        .filter(|row| !matches!(row.state.as_str(), "skipped" | "deferred"))
        .collect();
    assert!(due.len() > 3, "the book has emails due: {rows:?}");
    for row in due {
        let id = row.message_id.as_deref().unwrap_or_default();
        match row.state.as_str() {
            "sent" => assert_eq!(delivered.get(id), Some(&1), "{row:?}"),
            "sending" => assert!(listed.contains(&row.key), "{row:?} not listed: {listed}"),
            other => panic!("{} is still {other} after the restart: {row:?}", row.key),
        }
    }
    assert_eq!(
        delivered.len(),
        rows.iter().filter(|row| row.state == "sent").count(),
        "every delivery is recorded as sent"
    );
}

/// From the sandbox CRM's own task list: tasks were opened, and no account has two open
/// tasks for one reason (the second part of touchpoint's keys, `touchpoint:<reason>:...`).
fn assert_one_open_task_per_account_and_reason(world: &World) {
    let mut open: HashMap<(String, String), Vec<String>> = HashMap::new();
    for task in world
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
    assert!(!open.is_empty(), "the book opens some tasks");
    let doubled: Vec<_> = open.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "two open tasks for one reason: {doubled:?}"
    );
}

/// Each account's health writes, in order, must each differ from the one before.
fn assert_no_unchanged_score_written_again(world: &World) {
    let mut by_account: HashMap<String, Vec<Value>> = HashMap::new();
    for write in world.writes() {
        if write.method != "PUT" || !write.path.starts_with("/v1/health") {
            continue;
        }
        for item in write.body["items"].as_array().into_iter().flatten() {
            let account = item["account_id"].as_str().unwrap_or_default().to_owned();
            let content = serde_json::json!([item["score"], item["band"], item["measures"]]);
            by_account.entry(account).or_default().push(content);
        }
    }
    assert!(!by_account.is_empty(), "scores were written back");
    for (account, contents) in &by_account {
        let repeated = contents.windows(2).any(|pair| pair[0] == pair[1]);
        assert!(
            !repeated,
            "account {account} got the same score twice: {contents:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crm_that_stops_answering_holds_up_no_shutdown() {
    let world = World::new(50).await;
    world.crm.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let mut daemon = world
        .daemon(&[(
            "TOUCHPOINT__DAEMON__JOBS__RECONCILE_TASKS__SCHEDULE",
            "*/2 * * * * *",
        )])
        .await;
    wait_for(
        "the cycle and the reconciliation waiting on the CRM",
        Some(&daemon),
        || async {
            let requests = world.crm.stats().requests;
            let asked = |endpoint: &str| requests.get(endpoint).copied().unwrap_or(0) > 0;
            (asked("GET /v1/accounts") && asked("GET /v1/tasks")).then_some(())
        },
    )
    .await;

    let status = daemon.terminate().await;

    assert_eq!(status.code(), Some(0), "{}", daemon.log_text());
    let logs = daemon.logs();
    let summary = |job: &str| {
        logs.iter()
            .find(|line| line["job"] == job && line.get("duration_ms").is_some())
            .unwrap_or_else(|| panic!("no summary of {job}:\n{}", daemon.log_text()))
    };
    assert_eq!(summary("pull_and_score")["status"], "interrupted");
    assert_eq!(summary("reconcile_tasks")["status"], "interrupted");
    assert!(
        !daemon.log_text().contains("abandoned"),
        "nothing waited for the deadline:\n{}",
        daemon.log_text()
    );
    world.crm.set_faults(Faults::default());
}
