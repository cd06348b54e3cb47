//! One active scheduler per database: a second instance serves HTTP, schedules nothing, and
//! takes over once the first dies without a word.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use crate::helpers::{Daemon, LEASE_TTL_SECS, World, wait_for, with_status};

async fn job_runs(daemon: &Daemon) -> f64 {
    daemon.metrics().await.sum("touchpoint_job_runs_total")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_stands_by_and_takes_over_when_the_first_is_killed() {
    let world = World::new(100).await;
    let mut first = world.daemon(&[]).await;
    wait_for(
        "the first instance to run a cycle",
        Some(&first),
        || async { (job_runs(&first).await >= 1.0).then_some(()) },
    )
    .await;

    let second = world.daemon(&[]).await;
    let (status, body) = second.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["role"], "standby");

    // Both run side by side for a while: the first keeps cycling, the second never does.
    let first_runs = job_runs(&first).await;
    wait_for(
        "more cycles from the first instance",
        Some(&first),
        || async { (job_runs(&first).await >= first_runs + 2.0).then_some(()) },
    )
    .await;
    let standby = second.metrics().await;
    assert_eq!(standby.value("touchpoint_scheduler_active"), 0.0);
    assert_eq!(
        standby.sum("touchpoint_job_runs_total"),
        0.0,
        "{}",
        second.log_text()
    );

    first.kill().await;
    let killed_at = Utc::now();
    let clock = Instant::now();
    wait_for(
        "the second instance to take over",
        Some(&second),
        || async {
            let metrics = second.metrics().await;
            (metrics.value("touchpoint_scheduler_active") == 1.0).then_some(())
        },
    )
    .await;
    let took = clock.elapsed();
    let bound = Duration::from_secs(LEASE_TTL_SECS + 1 + 10);
    assert!(
        took <= bound,
        "took over after {took:?}; the lease lasts {LEASE_TTL_SECS} s"
    );

    let runs = wait_for("a cycle by the second instance", Some(&second), || async {
        let runs = world.runs().await;
        let after = runs
            .iter()
            .any(|run| run.started_at > killed_at && run.status == "succeeded");
        after.then_some(runs)
    })
    .await;
    let abandoned: Vec<_> = with_status(&runs, &["running"])
        .into_iter()
        .filter(|run| run.started_at < killed_at)
        .collect();
    assert!(
        abandoned.is_empty(),
        "a killed run stays running: {abandoned:?}"
    );
    assert!(job_runs(&second).await >= 1.0);
}
