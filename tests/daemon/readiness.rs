//! `/healthz` and `/readyz` as a load balancer or an orchestrator reads them.

use serde_json::Value;
use touchpoint::sandbox::Faults;

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
