//! When jobs run: never on top of themselves, and a run missed while the daemon was down is
//! caught up once at start-up.

use chrono::{TimeDelta, Timelike, Utc};
use touchpoint::daemon::scheduler::JobRunRecord;
use touchpoint::sandbox::Faults;
use touchpoint::store::Store;

use crate::helpers::{World, wait_for, with_status};

/// Daily, twelve hours from now: a schedule that does not fire during a test.
fn daily() -> String {
    format!("0 0 {} * * *", (Utc::now().hour() + 12) % 24)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_cycle_is_not_overlapped_by_the_next_ticks() {
    let world = World::new(100).await;
    world.crm.set_faults(Faults {
        delay_ms: 300,
        ..Faults::default()
    });
    let mut daemon = world.daemon(&[]).await;

    let runs = wait_for("two slow cycles", Some(&daemon), || async {
        let runs = world.runs().await;
        (with_status(&runs, &["succeeded"]).len() >= 2).then_some(runs)
    })
    .await;

    for pair in runs.windows(2) {
        let ended = pair[0].finished_at.expect("an earlier run has ended");
        assert!(
            pair[1].started_at >= ended,
            "{} overlapped {}",
            pair[1].id,
            pair[0].id
        );
    }
    let metrics = daemon.metrics().await;
    let skipped = metrics.value(r#"touchpoint_job_skipped_total{job="pull_and_score"}"#);
    assert!(
        skipped >= 1.0,
        "ticks came during the slow runs: {}",
        daemon.log_text()
    );
    let logged = daemon.logs().iter().any(|line| {
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("still going"))
    });
    assert!(logged, "a skipped tick is logged");
    assert_eq!(daemon.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_missed_while_the_daemon_was_down_is_caught_up_once_at_start_up() {
    let world = World::new(100).await;
    let store = Store::open(&world.store_settings())
        .await
        .expect("the store");
    let long_ago = Utc::now() - TimeDelta::days(3);
    let record = JobRunRecord {
        due: long_ago,
        run_id: None,
        status: "succeeded".into(),
        started_at: long_ago,
        finished_at: long_ago,
        duration_ms: 1000,
    };
    store
        .record_job_run("pull_and_score", &record)
        .await
        .expect("an old run is recorded");
    let daily = daily();
    let schedule = (
        "TOUCHPOINT__DAEMON__JOBS__PULL_AND_SCORE__SCHEDULE",
        daily.as_str(),
    );
    let mut daemon = world.daemon(&[schedule]).await;

    wait_for("the catch-up run", Some(&daemon), || async {
        let runs = world.runs().await;
        (!with_status(&runs, &["succeeded"]).is_empty()).then_some(())
    })
    .await;
    // Three days of missed daily runs, and several heartbeats later: still one run.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let runs = world.runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let covered = store
        .job_covered("pull_and_score", Utc::now())
        .await
        .expect("the job's state");
    assert!(
        covered > long_ago + TimeDelta::days(2),
        "covered up to {covered}"
    );
    assert_eq!(daemon.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_start_runs_nothing_before_the_first_fire_time() {
    let world = World::new(50).await;
    let daily = daily();
    let schedule = (
        "TOUCHPOINT__DAEMON__JOBS__PULL_AND_SCORE__SCHEDULE",
        daily.as_str(),
    );
    let mut daemon = world.daemon(&[schedule]).await;

    wait_for("the daemon to become active", Some(&daemon), || async {
        let metrics = daemon.metrics().await;
        (metrics.value("touchpoint_scheduler_active") == 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    assert!(world.runs().await.is_empty(), "nothing was due yet");
    assert_eq!(daemon.terminate().await.code(), Some(0));
}
