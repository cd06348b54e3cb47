//! Answers collected through the answer pages: stored per email, folded into the next cycle,
//! and pushed to the CRM.
//!
//! An answer belongs to the email (outbox key) whose link was used, and a second answer to the
//! same email replaces the first: people change their mind, and one email must never count as
//! two answers. Each answer has a stable response id, `tp-` and a hash of the outbox key, so
//! the copy the CRM returns after a push and the local copy are the same answer to the
//! folding, which counts an id once. A replaced answer is pushed again under the same id, and
//! the CRM's `PUT` replaces its copy too.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::model::{AccountId, ContactId, ResponseId, SurveyKind, SurveyResponse};
use crate::source::{RestClient, SourceError};
use crate::store::{Store, timestamp};

/// The columns every answer query reads, spelled out in each query: sqlx runs only SQL that
/// is fixed at compile time.
macro_rules! select_answers {
    ($filter:literal) => {
        concat!(
            "SELECT key, survey, account_id, contact_id, score, goal_achieved, goal, comment,
                    submitted_at FROM survey_answers ",
            $filter
        )
    };
}

/// A hex digest of an outbox key: names `.eml` files, Message-IDs and response ids.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The response id of the answer to the email `key`.
pub fn response_id(key: &str) -> String {
    format!("tp-{}", &key_hash(key)[..24])
}

/// An answer as the pages collect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub key: String,
    pub survey: SurveyKind,
    pub account_id: String,
    pub contact_id: String,
    /// NPS: 0-10.
    pub score: Option<u8>,
    /// Goal survey: did they achieve a goal?
    pub goal_achieved: Option<bool>,
    /// Goal survey: which goal, in their words.
    pub goal: Option<String>,
    pub comment: Option<String>,
    pub submitted_at: DateTime<Utc>,
}

impl Answer {
    /// The answer as the contract's survey response.
    pub fn to_response(&self) -> Option<SurveyResponse> {
        let comment = match (&self.goal, &self.comment) {
            (Some(goal), Some(comment)) => Some(format!("Goal: {goal}\n{comment}")),
            (Some(goal), None) => Some(format!("Goal: {goal}")),
            (None, comment) => comment.clone(),
        };
        Some(SurveyResponse {
            id: ResponseId::parse(&response_id(&self.key)).ok()?,
            account_id: AccountId::parse(&self.account_id).ok()?,
            contact_id: ContactId::parse(&self.contact_id).ok(),
            survey: self.survey,
            submitted_at: self.submitted_at,
            score: self.score,
            goal_achieved: self.goal_achieved,
            comment,
        })
    }
}

/// What pushing answers to the CRM did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    pub pushed: usize,
    /// `(response id, why)` of answers the CRM did not take; they are tried again next cycle.
    pub failures: Vec<(String, String)>,
}

impl Store {
    /// Stores an answer, replacing an earlier answer to the same email.
    pub async fn save_answer(&self, answer: &Answer) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO survey_answers (key, response_id, survey, account_id, contact_id, score,
                 goal_achieved, goal, comment, submitted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (key) DO UPDATE SET score = excluded.score,
                 goal_achieved = excluded.goal_achieved, goal = excluded.goal,
                 comment = excluded.comment, submitted_at = excluded.submitted_at,
                 pushed_at = NULL, push_error = NULL",
        )
        .bind(&answer.key)
        .bind(response_id(&answer.key))
        .bind(answer.survey.as_str())
        .bind(&answer.account_id)
        .bind(&answer.contact_id)
        .bind(answer.score.map(i64::from))
        .bind(answer.goal_achieved)
        .bind(&answer.goal)
        .bind(&answer.comment)
        .bind(timestamp(answer.submitted_at))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to store the answer to {}", answer.key))?;
        Ok(())
    }

    /// The answer to the email `key`, if there is one.
    pub async fn answer(&self, key: &str) -> anyhow::Result<Option<Answer>> {
        let row = sqlx::query(select_answers!("WHERE key = $1"))
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .with_context(|| format!("failed to read the answer to {key}"))?;
        Ok(row.as_ref().and_then(answer_row))
    }

    /// Every answer submitted at or after `since`.
    pub async fn answers_since(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<Answer>> {
        let rows = sqlx::query(select_answers!(
            "WHERE submitted_at >= $1 ORDER BY submitted_at, key"
        ))
        .bind(timestamp(since))
        .fetch_all(self.pool())
        .await
        .context("failed to read the collected answers")?;
        Ok(rows.iter().filter_map(answer_row).collect())
    }

    async fn unpushed_answers(&self) -> anyhow::Result<Vec<Answer>> {
        let rows = sqlx::query(select_answers!(
            "WHERE pushed_at IS NULL ORDER BY submitted_at, key"
        ))
        .fetch_all(self.pool())
        .await
        .context("failed to read the answers not yet in the CRM")?;
        Ok(rows.iter().filter_map(answer_row).collect())
    }

    /// Marks an answer pushed, unless it was replaced since it was read.
    async fn answer_pushed(&self, answer: &Answer, error: Option<&str>) -> anyhow::Result<()> {
        let pushed_at = error.is_none().then(|| timestamp(Utc::now()));
        sqlx::query(
            "UPDATE survey_answers SET pushed_at = $3, push_error = $4
             WHERE key = $1 AND submitted_at = $2",
        )
        .bind(&answer.key)
        .bind(timestamp(answer.submitted_at))
        .bind(pushed_at)
        .bind(error)
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to record the push of the answer to {}", answer.key))?;
        Ok(())
    }
}

fn answer_row(row: &sqlx::sqlite::SqliteRow) -> Option<Answer> {
    let survey = match row.get::<String, _>("survey").as_str() {
        "nps" => SurveyKind::Nps,
        "goal" => SurveyKind::Goal,
        _ => return None,
    };
    let submitted_at: String = row.get("submitted_at");
    Some(Answer {
        key: row.get("key"),
        survey,
        account_id: row.get("account_id"),
        contact_id: row.get("contact_id"),
        score: row
            .get::<Option<i64>, _>("score")
            .and_then(|s| u8::try_from(s).ok()),
        goal_achieved: row.get("goal_achieved"),
        goal: row.get("goal"),
        comment: row.get("comment"),
        submitted_at: DateTime::parse_from_rfc3339(&submitted_at)
            .ok()?
            .with_timezone(&Utc),
    })
}

/// Pushes every answer the CRM does not have yet through `PUT /v1/survey-responses/{id}`.
pub async fn push(store: &Store, crm: &RestClient) -> anyhow::Result<PushReport> {
    let mut report = PushReport::default();
    for answer in store.unpushed_answers().await? {
        let Some(response) = answer.to_response() else {
            continue;
        };
        let path = format!("v1/survey-responses/{}", response.id);
        let result: Result<serde_json::Value, SourceError> = crm.put(&path, &response).await;
        match result {
            Ok(_) => {
                store.answer_pushed(&answer, None).await?;
                report.pushed += 1;
            }
            Err(e) => {
                let id = response.id.as_str();
                tracing::warn!(response.id = id, "could not push an answer to the CRM: {e}");
                store.answer_pushed(&answer, Some(&e.to_string())).await?;
                report
                    .failures
                    .push((response.id.to_string(), e.to_string()));
            }
        }
    }
    Ok(report)
}
