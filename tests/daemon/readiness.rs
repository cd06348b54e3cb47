//! `/healthz` and `/readyz` as a load balancer or an orchestrator reads them.

use serde_json::Value;
use touchpoint::sandbox::Faults;
use touchpoint::store::Store;

use crate::helpers::{World, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn readyz_turns_unready_when_the_last_cycle_failed_and_ready_after_a_success() {
    let world = World::new(50).await;
    world.crm.set_faults(Faults {
        hang: true,
        ..Faults::default()
    });
    let mut daemon = world
        .daemon(&[
            ("TOUCHPOINT__SOURCE__REQUEST_TIMEOUT_SECS", "1"),
            ("TOUCHPOINT__SOURCE__MAX_RETRIES", "0"),
        ])
        .await;
    let (status, body) = daemon.get("/healthz").await;
    assert_eq!(status, 200, "{body}");

    let unready: Value = wait_for(
        "/readyz to report the failed cycle",
        Some(&daemon),
        || async {
            let (status, body) = daemon.get("/readyz").await;
            (status == 503).then(|| serde_json::from_str(&body).expect("JSON"))
        },
    )
    .await;
    assert_eq!(unready["ready"], false);
    let reason = unready["reason"].as_str().expect("a reason");
    assert!(reason.contains("failed"), "{reason}");
    assert_eq!(unready["last_cycle"]["status"], "failed");
    let metrics = daemon.metrics().await;
    assert_eq!(metrics.value("touchpoint_last_cycle_success"), 0.0);
    assert!(metrics.value(r#"touchpoint_cycles_total{status="failed"}"#) >= 1.0);

    world.crm.set_faults(Faults::default());
    wait_for("/readyz to recover", Some(&daemon), || async {
        let (status, _) = daemon.get("/readyz").await;
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(daemon.terminate().await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_that_fails_on_a_store_error_is_recorded_failed_and_readyz_is_unready() {
    let world = World::new(100).await;
    // The store refuses to let a survey email go out or a task be recorded, as a full disk or
    // a broken file would: every cycle fails once it has begun storing.
    let store = Store::open(&world.store_settings())
        .await
        .expect("the store is created");
    drop(store);
    let url = format!("sqlite://{}", world.store_path().display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("the store opens");
    for statement in [
        "CREATE TRIGGER outbox_refuses BEFORE UPDATE OF state ON survey_outbox
         WHEN NEW.state = 'sending' BEGIN SELECT RAISE(ABORT, 'the store refuses writes'); END",
        "CREATE TRIGGER ledger_refuses BEFORE INSERT ON tasks
         BEGIN SELECT RAISE(ABORT, 'the store refuses writes'); END",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect("a trigger is created");
    }
    pool.close().await;
    let mut daemon = world.daemon(&[]).await;

    let unready: Value = wait_for("/readyz to report the failure", Some(&daemon), || async {
        let (status, body) = daemon.get("/readyz").await;
        (status == 503).then(|| serde_json::from_str(&body).expect("JSON"))
    })
    .await;

    let reason = unready["reason"].as_str().expect("a reason");
    assert!(reason.contains("the store refuses writes"), "{reason}");
    assert_eq!(unready["last_cycle"]["status"], "failed");
    let listed = world.command(&["runs", "--output", "json"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).expect("JSON");
    let failed = listed
        .iter()
        .find(|run| run["status"] == "failed")
        .unwrap_or_else(|| panic!("a failed run: {listed:?}"));
    let recorded = failed["reason"].as_str().unwrap_or_default();
    assert!(recorded.contains("the store refuses writes"), "{failed}");
    assert!(!failed["finished_at"].is_null(), "{failed}");
    let metrics = daemon.metrics().await;
    assert_eq!(metrics.value("touchpoint_last_cycle_success"), 0.0);
    assert!(metrics.value(r#"touchpoint_cycles_total{status="failed"}"#) >= 1.0);
    assert_eq!(daemon.terminate().await.code(), Some(0));
}
