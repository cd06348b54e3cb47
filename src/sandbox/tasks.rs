//! The CRM tasks the sandbox keeps: created by `PUT /v1/tasks/{key}`, closed by a CSM through
//! `POST /_sandbox/tasks/{key}/status`, listed by `GET /v1/tasks`.
//!
//! The key is the idempotency key: the same key for the same account and kind answers the task
//! already there (whatever its status); the same key for anything else is a conflict.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::book::{Book, Records, SortKey};
use super::problem::Problem;

/// The longest key the contract allows.
const MAX_KEY_LEN: usize = 200;
const KINDS: [&str; 2] = ["risk", "review_request"];
const PRIORITIES: [&str; 3] = ["low", "medium", "high"];
/// The statuses a task can have; a new task is `open`.
pub const STATUSES: [&str; 3] = ["open", "completed", "canceled"];

/// A task as the sandbox stores and serves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub key: String,
    pub id: String,
    pub account_id: String,
    pub kind: String,
    pub owner_id: String,
    pub subject: String,
    pub body: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub priority: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The body of `PUT /v1/tasks/{key}`, before it is checked.
#[derive(Deserialize)]
struct TaskBody {
    account_id: Option<String>,
    kind: Option<String>,
    owner_id: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    due_date: Option<String>,
    priority: Option<String>,
}

/// A checked request to create a task.
pub struct NewTask {
    account_id: String,
    kind: String,
    owner_id: String,
    subject: String,
    body: Option<String>,
    due_date: Option<NaiveDate>,
    priority: String,
}

/// Checks a task key: `A-Z a-z 0-9 . _ : -`, 1 to 200 characters.
pub fn check_key(key: &str) -> Result<(), Problem> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(allowed) {
        return Err(Problem::validation(format!(
            "task key must be 1-{MAX_KEY_LEN} characters from A-Z a-z 0-9 . _ : -"
        )));
    }
    Ok(())
}

fn required(field: &str, value: Option<String>) -> Result<String, Problem> {
    value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
        .ok_or_else(|| Problem::validation(format!("{field} is required")))
}

fn one_of(field: &str, value: String, allowed: &[&str]) -> Result<String, Problem> {
    if allowed.contains(&value.as_str()) {
        return Ok(value);
    }
    Err(Problem::validation(format!(
        "{field} must be one of {allowed:?}, not {value:?}"
    )))
}

impl NewTask {
    /// Checks a request body against the contract and the book: an unknown account is a 404,
    /// anything else wrong (including an owner the book does not know) a 422.
    pub fn parse(body: Value, book: &dyn Book) -> Result<Self, Problem> {
        let body: TaskBody = serde_json::from_value(body)
            .map_err(|error| Problem::validation(format!("task body: {error}")))?;

        let account_id = required("account_id", body.account_id)?;
        let kind = one_of("kind", required("kind", body.kind)?, &KINDS)?;
        let owner_id = required("owner_id", body.owner_id)?;
        let subject = required("subject", body.subject)?;
        let priority = body.priority.unwrap_or_else(|| "medium".to_owned());
        let priority = one_of("priority", priority, &PRIORITIES)?;
        let due_date = body
            .due_date
            .map(|raw| {
                NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
                    Problem::validation(format!("due_date must be YYYY-MM-DD, not {raw:?}"))
                })
            })
            .transpose()?;

        if !book.has_account(&account_id) {
            return Err(Problem::not_found(format!("no account {account_id:?}")));
        }
        if !book.has_owner(&owner_id) {
            return Err(Problem::validation(format!(
                "owner_id {owner_id:?} is not an owner"
            )));
        }
        Ok(Self {
            account_id,
            kind,
            owner_id,
            subject,
            body: body.body,
            due_date,
            priority,
        })
    }
}

/// Every task, by key.
#[derive(Default)]
pub struct TaskStore {
    by_key: BTreeMap<String, Task>,
}

impl TaskStore {
    /// Creates the task (201), answers the one already under this key for the same account and
    /// kind (200), or refuses a key taken by something else (409).
    pub fn put(
        &mut self,
        key: &str,
        new: NewTask,
        now: DateTime<Utc>,
    ) -> Result<(StatusCode, Task), Problem> {
        if let Some(task) = self.by_key.get(key) {
            if task.account_id == new.account_id && task.kind == new.kind {
                return Ok((StatusCode::OK, task.clone()));
            }
            let detail = format!(
                "task key {key:?} already names a {} task of account {}",
                task.kind, task.account_id
            );
            return Err(Problem::new(StatusCode::CONFLICT, "conflict", detail));
        }

        let task = Task {
            key: key.to_owned(),
            id: format!("T-{:06}", self.by_key.len() + 1),
            account_id: new.account_id,
            kind: new.kind,
            owner_id: new.owner_id,
            subject: new.subject,
            body: new.body,
            due_date: new.due_date,
            priority: new.priority,
            status: "open".to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.by_key.insert(key.to_owned(), task.clone());
        Ok((StatusCode::CREATED, task))
    }

    /// Changes a task's status as a CSM would in the CRM, moving its `updated_at` forward.
    /// `None` when there is no such task.
    pub fn set_status(&mut self, key: &str, status: &str, now: DateTime<Utc>) -> Option<Task> {
        let task = self.by_key.get_mut(key)?;
        task.status = status.to_owned();
        task.updated_at = now.max(task.updated_at + TimeDelta::milliseconds(1));
        Some(task.clone())
    }

    pub fn all(&self) -> Vec<Task> {
        self.by_key.values().cloned().collect()
    }

    /// The tasks in contract order, `(updated_at, key)`.
    pub fn sorted(&self) -> Records<Task> {
        Records::new(self.by_key.values().cloned(), |task| {
            SortKey::timed(task.updated_at, &task.key)
        })
    }
}

/// The current time at the millisecond, as CRMs usually keep it.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        assert!(check_key("risk:A-000001:2024-06-01").is_ok());
        assert!(check_key("has space").is_err());
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(201)).is_err());
    }
}
