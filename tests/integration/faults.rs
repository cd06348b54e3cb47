//! The faults a real CRM throws at a pull, each handled as the contract says.

use touchpoint::sandbox::Faults;
use touchpoint::store::RunStatus;

use crate::helpers::App;

const BOOK: usize = 450;
const TODAY: &str = "2025-06-02";

async fn clean_scores() -> Vec<(String, Option<u8>)> {
    let app = App::generated(BOOK, TODAY).await;
    scores(&app.plan(TODAY).await)
}

fn scores(report: &touchpoint::cycle::CycleReport) -> Vec<(String, Option<u8>)> {
    report
        .accounts
        .iter()
        .map(|a| (a.account_id.clone(), a.current.score))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_in_the_middle_of_paging_is_waited_out_and_the_same_page_retried() {
    let app = App::generated(BOOK, TODAY).await;
    app.faults(Faults {
        rate_limit_every: Some(4),
        retry_after_secs: 1,
        ..Faults::default()
    });

    let report = app.plan(TODAY).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.reason);
    let client = report.client.expect("REST counters");
    assert!(client.rate_limited > 0, "the sandbox answered 429s");
    assert_eq!(
        scores(&report),
        clean_scores().await,
        "nothing lost or doubled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_until_the_pull_succeeds() {
    let app = App::generated(BOOK, TODAY).await;
    app.faults(Faults {
        error_share: 0.3,
        ..Faults::default()
    });

    let report = app.plan(TODAY).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.reason);
    assert!(report.client.expect("REST counters").retries > 0);
    assert_eq!(scores(&report), clean_scores().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_fails_the_run_after_the_timeout_and_scores_nothing() {
    let app = App::generated(50, TODAY).await.with(&[
        ("TOUCHPOINT__SOURCE__REQUEST_TIMEOUT_SECS", "1"),
        ("TOUCHPOINT__SOURCE__MAX_RETRIES", "1"),
    ]);
    app.faults(Faults {
        hang: true,
        ..Faults::default()
    });

    let report = app.cycle(TODAY).await;

    assert_eq!(report.status, RunStatus::Failed);
    let reason = report.reason.expect("a failed run says why");
    assert!(reason.contains("timeout"), "{reason}");
    assert!(
        report.accounts.is_empty(),
        "nothing is scored from a failed pull"
    );
    assert!(
        app.crm.health().is_empty(),
        "nothing is written from a failed pull"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeating_cursor_stops_the_pull_instead_of_looping() {
    let app = App::generated(BOOK, TODAY).await;
    app.faults(Faults {
        repeat_cursor_on_page: Some(2),
        ..Faults::default()
    });

    let report = app.cycle(TODAY).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.reason.expect("a reason").contains("cursor"));
    assert!(report.accounts.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_rows_cost_their_own_record_and_hold_only_their_account() {
    let app = App::generated(BOOK, TODAY).await;
    app.faults(Faults {
        malformed_share: 0.02,
        ..Faults::default()
    });

    let report = app.cycle(TODAY).await;

    assert_eq!(report.status, RunStatus::Partial, "{:?}", report.reason);
    assert!(!report.rejected.is_empty());
    assert!(report.rejected.iter().all(|r| !r.reason.is_empty()));
    let held: Vec<&String> = report.held.iter().map(|(id, _)| id).collect();
    assert!(
        report
            .accounts
            .iter()
            .all(|a| !held.contains(&&a.account_id)),
        "a held account is not scored"
    );
    assert!(
        report.scored > BOOK / 2,
        "the rest of the book is still scored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_row_is_rejected_naming_its_field_what_it_expected_and_what_came() {
    let app = App::generated(BOOK, TODAY).await;
    app.faults(Faults {
        malformed_share: 0.05,
        ..Faults::default()
    });

    let report = app.plan(TODAY).await;

    let reasons: Vec<&str> = report.rejected.iter().map(|r| r.reason.as_str()).collect();
    let expected = [
        "field `id`: expected an id, found an object",
        "field `updated_at`: expected an RFC 3339 timestamp, a date or epoch milliseconds, \
         found \"not-a-date\"",
        "field `submitted_at`: expected an RFC 3339 timestamp, a date or epoch milliseconds, \
         found \"not-a-date\"",
        "field `days_active`: expected a whole number, found \"several\"",
    ];
    assert!(!reasons.is_empty());
    let unexplained: Vec<&&str> = reasons.iter().filter(|r| !expected.contains(r)).collect();
    assert!(unexplained.is_empty(), "{unexplained:?}");
    for reason in &expected[..2] {
        assert!(reasons.contains(reason), "{reason:?} in {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_book_that_shrinks_suddenly_is_treated_as_incomplete() {
    let big = App::generated(BOOK, TODAY).await;
    big.cycle(TODAY).await;

    let small = App::generated(BOOK / 4, TODAY).await;
    let store = big.settings.store.path.display().to_string();
    let small = small.with(&[("TOUCHPOINT__STORE__PATH", &store)]);
    let report = small.cycle(TODAY).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.reason.expect("a reason").contains("incomplete"));
    assert!(small.crm.health().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn scores_the_crm_did_not_take_make_the_run_partial_and_say_how_many() {
    let app = App::generated(BOOK, TODAY)
        .await
        .with(&[("TOUCHPOINT__SOURCE__MAX_RETRIES", "1")]);
    let store = app.store().await;

    app.faults(Faults {
        write_error_share: 1.0,
        ..Faults::default()
    });
    let failed = app.cycle(TODAY).await;
    let stored_after_failure = app.crm.health().len();
    app.faults(Faults {
        refuse_health_share: 0.1,
        ..Faults::default()
    });
    let refused = app.cycle(TODAY).await;
    let stored_after_refusals = app.crm.health().len();
    app.faults(Faults::default());
    let clean = app.cycle(TODAY).await;

    let scored = failed.scored;
    let batches = scored.div_ceil(100);
    assert_eq!(failed.status, RunStatus::Partial, "{:?}", failed.reason);
    let reason = failed.reason.clone().expect("a reason");
    let expected = format!(
        "{scored} of {scored} score(s) not written back: {batches} batch(es) failed after \
         retries, 0 item(s) refused"
    );
    assert!(reason.contains(&expected), "{reason}");
    let run = store
        .run_record(failed.run_id.as_deref().expect("a run id"))
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!((run.status.as_str(), run.reason), ("partial", Some(reason)));
    assert_eq!(stored_after_failure, 0);

    let refusals = refused
        .writeback
        .as_ref()
        .expect("a write-back")
        .refused
        .len();
    assert!(refusals > 0 && refusals < scored / 2, "{refusals}");
    assert_eq!(refused.status, RunStatus::Partial, "{:?}", refused.reason);
    let expected = format!(
        "{refusals} of {scored} score(s) not written back: 0 batch(es) failed after retries, \
         {refusals} item(s) refused by the CRM"
    );
    let reason = refused.reason.expect("a reason");
    assert!(reason.contains(&expected), "{reason}");
    assert_eq!(stored_after_refusals, scored - refusals);

    assert_eq!(clean.status, RunStatus::Succeeded, "{:?}", clean.reason);
    assert_eq!(
        clean.writes_due, refusals,
        "only the refused scores are sent again"
    );
    assert_eq!(app.crm.health().len(), scored);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_score_the_crm_took_without_the_answer_arriving_is_sent_again_once_it_changes_back() {
    let app = App::generated(BOOK, TODAY).await;
    let first = app.cycle(TODAY).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.reason);

    // Yellow worth 60 points moves some scores; the CRM takes them but no answer comes back,
    // and with no retries the client never learns it.
    let app = app.with(&[
        ("TOUCHPOINT__SCORING__POINTS__YELLOW", "60"),
        ("TOUCHPOINT__SOURCE__MAX_RETRIES", "0"),
    ]);
    app.faults(Faults {
        lost_answer_share: 1.0,
        ..Faults::default()
    });
    let lost = app.cycle(TODAY).await;
    assert_eq!(lost.status, RunStatus::Partial, "{:?}", lost.reason);
    assert!(lost.writes_due > 0, "the new points move some scores");

    // Back to the old points: the CRM holds the moved scores, so they must be sent again.
    let app = app.with(&[]);
    app.faults(Faults::default());
    let back = app.cycle(TODAY).await;

    assert_eq!(back.writes_due, lost.writes_due, "{:?}", back.writeback);
    let crm = app.crm.health();
    let stale: Vec<&str> = back
        .accounts
        .iter()
        .filter(|a| {
            let held = crm.get(&a.account_id).map(|item| item["score"].as_u64());
            held != Some(a.current.score.map(u64::from))
        })
        .map(|a| a.account_id.as_str())
        .collect();
    assert!(stale.is_empty(), "the CRM holds other scores for {stale:?}");
}
