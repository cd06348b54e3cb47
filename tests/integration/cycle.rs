//! Whole cycles against a generated book: scores stored, written back once, history kept.

use touchpoint::cycle::Trend;
use touchpoint::store::RunStatus;

use crate::helpers::App;

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_scores_every_live_account_and_writes_each_score_back() {
    let app = App::generated(300, "2025-06-02").await;

    let report = app.cycle("2025-06-02").await;

    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.reason);
    assert_eq!(report.scored, report.accounts_pulled - report.archived);
    let written = report.writeback.expect("a write-back ran");
    assert_eq!(written.stored_count, report.scored);
    assert_eq!(app.crm.health().len(), report.scored);
    let bands = &report.bands;
    assert!(
        bands.green > 0 && bands.yellow > 0 && bands.red > 0,
        "{bands:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_cycle_writes_back_only_what_changed() {
    let app = App::generated(300, "2025-06-02").await;
    app.cycle("2025-06-02").await;
    let writes_before = app.crm.writes().len();

    let again = app.cycle("2025-06-02").await;

    assert_eq!(again.writes_due, 0);
    assert!(again.accounts.iter().all(|a| a.trend == Trend::Same));
    assert_eq!(
        app.crm.writes().len(),
        writes_before,
        "no PUT for unchanged scores"
    );
}

/// How many receipts the store holds in full, in the latest rows and in the history.
async fn stored_receipts(app: &App) -> (i64, i64) {
    let pool = app.raw_store().await;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&pool).await.expect("a count");
            n
        }
    };
    (
        count("SELECT COUNT(*) FROM account_scores WHERE receipt <> ''").await,
        count("SELECT COUNT(*) FROM score_history WHERE receipt <> ''").await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receipt_is_stored_once_and_explain_reads_the_newest_whether_it_changed_or_not() {
    let app = App::generated(300, "2025-06-02").await;
    let first = app.cycle("2025-03-03").await;
    assert_eq!(
        stored_receipts(&app).await,
        (0, first.scored as i64),
        "a first cycle keeps each receipt in the history only"
    );

    let later = app.cycle("2025-06-02").await;
    let changed = later.changed().count() as i64;
    let unchanged = later.scored as i64 - changed;
    assert!(
        changed > 0 && unchanged > 0,
        "{changed} changed, {unchanged} not"
    );
    assert_eq!(
        stored_receipts(&app).await,
        (unchanged, first.scored as i64 + changed)
    );

    let store = app.store().await;
    let moved = later.changed().next().expect("a changed account");
    let same = later
        .accounts
        .iter()
        .find(|a| a.trend == Trend::Same)
        .expect("an unchanged account");
    for account in [moved, same] {
        let explained = store
            .explain(&account.account_id)
            .await
            .expect("the store answers")
            .expect("scored");
        assert_eq!(
            explained.receipt["as_of"], "2025-06-02T00:00:00Z",
            "the newest receipt of {}",
            account.account_id
        );
        assert_eq!(explained.receipt["account_id"], account.account_id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_records_changes_and_trends_between_cycles() {
    let app = App::generated(300, "2025-06-02").await;
    let first = app.cycle("2025-03-03").await;

    let later = app.cycle("2025-06-02").await;

    let moved: Vec<_> = later.accounts.iter().filter(|a| a.delta() != 0).collect();
    assert!(!moved.is_empty(), "three months later some scores moved");
    for account in moved {
        let expected = if account.delta() > 0 {
            Trend::Up
        } else {
            Trend::Down
        };
        assert_eq!(account.trend, expected);
    }
    let changed = later.changed().next().expect("a changed account");
    let explained = app
        .store()
        .await
        .explain(&changed.account_id)
        .await
        .expect("the store answers")
        .expect("scored");
    assert_eq!(explained.history.len(), 2);

    // A first score is a baseline: red then is not "turned red", and opens no task.
    assert!(first.bands.red > 0, "some accounts start red");
    assert!(
        first
            .accounts
            .iter()
            .all(|a| !a.turned_red && a.red_since.is_none())
    );
    let first_tasks = &first.tasks.as_ref().expect("a task step").opened;
    assert!(
        first_tasks
            .iter()
            .all(|t| t.trigger_id.starts_with("answer:")),
        "no health task from a baseline: {first_tasks:?}"
    );
    // Later, exactly the accounts red now and not red before turned red.
    let turned: Vec<&str> = later
        .accounts
        .iter()
        .filter(|a| a.turned_red)
        .map(|a| a.account_id.as_str())
        .collect();
    let expected: Vec<&str> = later
        .accounts
        .iter()
        .filter(|a| {
            let was = a.previous.as_ref().map(|p| p.band.as_str());
            a.current.band.as_str() == "red" && was.is_some_and(|band| band != "red")
        })
        .map(|a| a.account_id.as_str())
        .collect();
    assert!(!turned.is_empty(), "some accounts turned red by June");
    assert_eq!(turned, expected);
    let stayed_red = later.accounts.iter().find(|a| {
        a.current.band.as_str() == "red"
            && a.previous
                .as_ref()
                .is_some_and(|p| p.band.as_str() == "red")
    });
    assert!(
        stayed_red.is_some_and(|a| !a.turned_red && a.red_since.is_none()),
        "red since the baseline is not turned red: {stayed_red:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_of_a_past_day_stores_scores_but_writes_nothing_to_the_crm() {
    let app = App::generated(300, "2025-06-02").await;
    app.cycle("2025-03-03").await;
    let writes_before = app.crm.writes().len();

    let replay = app.replay("2025-06-02").await;

    assert_eq!(replay.status, RunStatus::Succeeded, "{:?}", replay.reason);
    assert!(replay.writes_due > 0, "scores changed in three months");
    assert!(replay.writeback.is_none(), "nothing was sent");
    assert!(
        replay
            .writeback_note
            .as_deref()
            .is_some_and(|n| n.contains("--act-on-past"))
    );
    let tasks = replay.tasks.as_ref().expect("a task step");
    assert!(tasks.note.as_deref().is_some_and(|n| n.contains("replays")));
    assert_eq!(
        app.crm.writes().len(),
        writes_before,
        "no write reached the CRM"
    );
    let changed = replay.changed().next().expect("a changed account");
    let explained = app
        .store()
        .await
        .explain(&changed.account_id)
        .await
        .expect("the store answers")
        .expect("scored");
    assert_eq!(
        explained.history.len(),
        2,
        "the replay is in the local history"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_error_mid_cycle_ends_the_run_as_failed_with_its_cause() {
    let app = App::generated(300, "2025-06-02").await.with(&[
        ("TOUCHPOINT__TASKS__BREAKER__MAX_RED_SHARE", "1.0"),
        ("TOUCHPOINT__TASKS__BREAKER__MIN_ACCOUNTS", "100000"),
    ]);
    app.cycle("2025-03-03").await;
    // The task ledger refuses every new task, as a full disk or a broken file would.
    sqlx::query(
        "CREATE TRIGGER ledger_refuses BEFORE INSERT ON tasks
         BEGIN SELECT RAISE(ABORT, 'the task ledger refuses writes'); END",
    )
    .execute(&app.raw_store().await)
    .await
    .expect("the trigger is created");

    let error = app
        .try_cycle("2025-06-02")
        .await
        .expect_err("accounts turned red, and their tasks cannot be recorded");

    let said = format!("{error:#}");
    assert!(said.contains("the task ledger refuses writes"), "{said}");
    let runs = app.store().await.recent_runs(10).await.expect("runs");
    let last = &runs[0];
    assert_eq!(last.status, "failed", "{last:?}");
    assert!(last.finished_at.is_some(), "{last:?}");
    let reason = last.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("failed to record task") && reason.contains("refuses writes"),
        "the cause chain is the reason: {reason}"
    );
    assert!(said.contains(&last.id), "the error names the run: {said}");
    assert!(runs.iter().all(|run| run.status != "running"), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_an_older_day_leaves_the_latest_score_and_the_next_cycle_alone() {
    let app = App::generated(300, "2025-06-02").await;
    let live = app.cycle("2025-06-02").await;

    let replay = app.replay("2025-03-03").await;
    let next = app.cycle("2025-06-02").await;

    assert_eq!(replay.status, RunStatus::Succeeded, "{:?}", replay.reason);
    assert!(
        replay
            .accounts
            .iter()
            .all(|a| a.superseded && a.trend == Trend::New && !a.turned_red),
        "nothing was scored before 3 March, so every replayed score is a baseline"
    );
    assert_eq!(replay.writes_due, 0, "the CRM holds the newer scores");
    assert!(
        next.accounts
            .iter()
            .all(|a| a.trend == Trend::Same && !a.turned_red && !a.superseded),
        "the live cycle compares with June, not with the replayed March"
    );
    assert_eq!(next.writes_due, 0);
    let tasks = next.tasks.as_ref().expect("a task step");
    assert!(tasks.opened.is_empty(), "{:?}", tasks.opened);

    let moved = replay
        .accounts
        .iter()
        .find(|old| {
            live.accounts
                .iter()
                .any(|new| new.account_id == old.account_id && new.current != old.current)
        })
        .expect("some account scored differently in March");
    let in_june = live
        .accounts
        .iter()
        .find(|a| a.account_id == moved.account_id)
        .expect("scored in June");
    let explained = app
        .store()
        .await
        .explain(&moved.account_id)
        .await
        .expect("the store answers")
        .expect("scored");
    assert!(
        explained.as_of.starts_with("2025-06-02"),
        "{}",
        explained.as_of
    );
    assert_eq!(explained.scored, in_june.current);
    let days: Vec<&str> = explained.history.iter().map(|h| &h.as_of[..10]).collect();
    assert_eq!(
        days,
        ["2025-03-03", "2025-06-02"],
        "the replay joined the history"
    );
}
