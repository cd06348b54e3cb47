//! The daemon's jobs called directly, as the scheduler calls them, against the sandbox CRM and
//! a store in a temporary folder; their metrics are read the way `/metrics` serves them.

use std::sync::Arc;

use chrono::Utc;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use touchpoint::daemon::jobs::{PullAndScore, PushAnswers};
use touchpoint::daemon::{Job, JobContext, JobStatus, Metrics};
use touchpoint::model::SurveyKind;
use touchpoint::surveys::Delivery;
use touchpoint::surveys::answers::Answer;
use touchpoint::surveys::outbox::State;

use crate::helpers::{App, TOKEN};
use crate::surveys::{Harness, MONDAY, at, signer};

async fn context(app: &App) -> JobContext {
    let delivery = Delivery::new(&app.settings, Some(signer())).expect("the mail backend");
    JobContext {
        settings: Arc::new(app.settings.clone()),
        store: app.store().await,
        metrics: Arc::new(Metrics::new()),
        crm_token: Some(SecretString::from(TOKEN)),
        delivery: Some(Arc::new(delivery)),
        stop: CancellationToken::new(),
        due: Utc::now(),
    }
}

/// The value of one sample in the metrics as `/metrics` would serve them now.
async fn sample(ctx: &JobContext, series: &str) -> f64 {
    let book = ctx.store.book_gauges().await.expect("the store answers");
    ctx.metrics.set_book(Some(&book));
    let text = ctx.metrics.render();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{series} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_deferred_cycle_after_cycle_counts_once_as_waiting_now() {
    let today = Utc::now().date_naive().to_string();
    let app = App::generated(200, &today).await.with(&[
        ("TOUCHPOINT__SURVEYS__ENABLED", "true"),
        ("TOUCHPOINT__SURVEYS__MAX_PER_CYCLE", "2"),
        (
            "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
            "mon,tue,wed,thu,fri,sat,sun",
        ),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__START", "00:00"),
        ("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00"),
    ]);
    let ctx = context(&app).await;

    for _ in 0..3 {
        let outcome = PullAndScore.run(&ctx).await.expect("a cycle");
        assert_eq!(outcome.status, JobStatus::Succeeded, "{:?}", outcome.detail);
    }

    let waiting = ctx.store.outbox(&[State::Deferred]).await.expect("outbox");
    assert!(waiting.len() > 2, "over the budget: {}", waiting.len());
    let deferred = sample(&ctx, "touchpoint_emails_deferred").await;
    assert_eq!(deferred, waiting.len() as f64, "each waiting email once");
    assert_eq!(sample(&ctx, "touchpoint_emails_sent_total").await, 6.0);
    let text = ctx.metrics.render();
    assert!(
        text.contains("# TYPE touchpoint_emails_deferred gauge"),
        "{text}"
    );
}

fn answer(key: &str, account: &str) -> Answer {
    Answer {
        key: key.to_owned(),
        survey: SurveyKind::Goal,
        account_id: account.to_owned(),
        contact_id: "P-zoe".to_owned(),
        score: None,
        goal_achieved: Some(true),
        goal: None,
        comment: None,
        submitted_at: at(MONDAY),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_answers_says_partial_or_failed_when_pushes_fail_and_counts_its_requests() {
    let h = Harness::start(&[]).await;
    h.cycle(MONDAY).await;
    let ctx = context(&h.app).await;
    // Two answers to emails that went out; the CRM knows the first one's account only.
    let known = answer("goal:12m:A-leap:P-leap", "A-leap");
    let unknown = answer("goal:6m:A-end:P-zoe", "A-unknown");
    for answer in [&known, &unknown] {
        ctx.store.save_answer(answer).await.expect("stored");
    }

    let first = PushAnswers.run(&ctx).await.expect("the job runs");

    assert_eq!(first.status, JobStatus::Partial, "{:?}", first.detail);
    let detail = first.detail.unwrap_or_default();
    assert!(detail.contains("1 answer(s) pushed, 1 failed"), "{detail}");
    assert_eq!(sample(&ctx, "touchpoint_source_requests_total").await, 2.0);

    let second = PushAnswers.run(&ctx).await.expect("the job runs");

    assert_eq!(second.status, JobStatus::Failed, "{:?}", second.detail);
    assert_eq!(sample(&ctx, "touchpoint_source_requests_total").await, 3.0);
}
