//! The sandbox CRM driven over real HTTP on loopback: each test starts its own sandbox on
//! port 0 and talks to it as a contract client would.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};
use touchpoint::sandbox::{self, Faults, SandboxHandle, SandboxOptions};

const TOKEN: &str = "sandbox-token";

fn anchor() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, 15).expect("a date")
}

async fn spawn_sandbox(accounts: usize) -> SandboxHandle {
    let options = SandboxOptions {
        accounts,
        anchor: anchor(),
        ..SandboxOptions::default()
    };
    sandbox::spawn(options).await.expect("the sandbox starts")
}

/// A thin contract client for the tests.
struct Api {
    client: Client,
    base: String,
}

impl Api {
    fn new(sandbox: &SandboxHandle) -> Self {
        Self {
            client: Client::new(),
            base: sandbox.base_url(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .query(query)
            .send()
            .await
            .expect("the sandbox answers")
    }

    async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        json_of(self.get(path, query).await).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .put(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("the sandbox answers");
        json_of(response).await
    }

    /// Follows cursors to the end of a list, checking each page's size.
    async fn pull_all(&self, path: &str, query: &[(&str, &str)], limit: usize) -> Vec<Value> {
        let limit_text = limit.to_string();
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut params = query.to_vec();
            params.push(("limit", &limit_text));
            if let Some(cursor) = &cursor {
                params.push(("cursor", cursor));
            }
            let (status, page) = self.get_json(path, &params).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let data = page["data"].as_array().expect("a data array");
            assert!(data.len() <= limit);
            rows.extend(data.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return rows,
            }
        }
    }
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn text<'a>(row: &'a Value, field: &str) -> &'a str {
    row[field].as_str().unwrap_or_default()
}

#[tokio::test]
async fn paging_returns_every_account_once_in_contract_order() {
    let sandbox = spawn_sandbox(2500).await;
    let api = Api::new(&sandbox);

    let accounts = api.pull_all("/v1/accounts", &[], 1000).await;

    assert_eq!(accounts.len(), 2500);
    let ids: HashSet<&str> = accounts.iter().map(|a| text(a, "id")).collect();
    assert_eq!(ids.len(), 2500);
    let keys: Vec<(&str, &str)> = accounts
        .iter()
        .map(|a| (text(a, "updated_at"), text(a, "id")))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn small_pages_and_other_lists_page_to_the_end_too() {
    let sandbox = spawn_sandbox(120).await;
    let api = Api::new(&sandbox);

    let owners = api.pull_all("/v1/owners", &[], 2).await;
    assert_eq!(owners.len(), 3);
    let contacts = api.pull_all("/v1/contacts", &[], 77).await;
    let summary = sandbox.summary().counts;
    assert_eq!(contacts.len() as u64, summary["contacts"]);
    let activities = api.pull_all("/v1/activities", &[], 500).await;
    assert_eq!(activities.len() as u64, summary["activities"]);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn updated_since_is_inclusive() {
    let sandbox = spawn_sandbox(300).await;
    let api = Api::new(&sandbox);
    let all = api.pull_all("/v1/accounts", &[], 1000).await;
    let since = text(&all[100], "updated_at").to_owned();

    let recent = api
        .pull_all("/v1/accounts", &[("updated_since", &since)], 50)
        .await;

    let expected = all
        .iter()
        .filter(|a| text(a, "updated_at") >= since.as_str());
    assert_eq!(recent.len(), expected.count());
    assert_eq!(text(&recent[0], "updated_at"), since);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_problem_documents() {
    let sandbox = spawn_sandbox(50).await;
    let api = Api::new(&sandbox);

    let response = api.get("/v1/accounts", &[("limit", "1001")]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let content_type = response.headers()[header::CONTENT_TYPE].clone();
    assert_eq!(content_type, "application/problem+json");
    let (_, problem) = json_of(response).await;
    assert_eq!(problem["code"], "validation_failed");
    assert_eq!(problem["status"], 422);
    for field in ["type", "title", "detail"] {
        assert!(problem[field].is_string(), "{field}");
    }

    let (status, problem) = api.get_json("/v1/accounts", &[("cursor", "forged")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "validation_failed");

    let (status, _) = api.get_json("/v1/usage", &[("window_days", "30")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let window = [("window_end", "2025-03-15"), ("window_days", "367")];
    let (status, _) = api.get_json("/v1/usage", &window).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let sandbox = spawn_sandbox(10).await;
    let url = format!("{}/v1/accounts", sandbox.base_url());
    let client = Client::new();

    let response = client.get(&url).send().await.expect("an answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (_, problem) = json_of(response).await;
    assert_eq!(problem["code"], "unauthorized");

    let wrong = client.get(&url).bearer_auth("guess").send().await;
    assert_eq!(wrong.expect("an answer").status(), StatusCode::UNAUTHORIZED);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_same_seed_serves_the_same_bytes() {
    let (first, second) = (spawn_sandbox(400).await, spawn_sandbox(400).await);
    let (one, two) = (Api::new(&first), Api::new(&second));
    let window = [("window_end", "2025-03-15"), ("window_days", "30")];

    for (path, query) in [
        ("/v1/accounts", &[][..]),
        ("/v1/contacts", &[][..]),
        ("/v1/activities", &[][..]),
        ("/v1/survey-responses", &[][..]),
        ("/v1/usage", &window[..]),
    ] {
        let a = one.get(path, query).await.text().await.expect("a body");
        let b = two.get(path, query).await.text().await.expect("a body");
        assert_eq!(a, b, "{path}");
        assert!(a.len() > 1000, "{path}: {a}");
    }
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn every_nth_request_is_rate_limited_with_retry_after() {
    let sandbox = spawn_sandbox(20).await;
    let api = Api::new(&sandbox);
    sandbox.set_faults(Faults {
        rate_limit_every: Some(3),
        retry_after_secs: 2,
        ..Faults::default()
    });

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = api.get("/v1/owners", &[]).await;
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()[header::RETRY_AFTER], "2");
            let (_, problem) = json_of(response).await;
            assert_eq!(problem["policy"], "burst");
            assert_eq!(problem["code"], "rate_limited");
        }
    }

    assert_eq!(statuses, vec![200, 200, 429, 200, 200, 429]);
    assert_eq!(sandbox.stats().rate_limited, 2);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_error_share_fails_that_share_of_requests() {
    let sandbox = spawn_sandbox(20).await;
    let api = Api::new(&sandbox);
    sandbox.set_faults(Faults {
        error_share: 0.5,
        ..Faults::default()
    });

    let mut failed = 0;
    for _ in 0..10 {
        let (status, body) = api.get_json("/v1/accounts", &[]).await;
        if status.is_server_error() {
            failed += 1;
            assert_eq!(body["code"], "unavailable");
        }
    }

    assert_eq!(failed, 5);
    assert_eq!(sandbox.stats().server_errors, 5);
    let admin = Client::new()
        .get(format!("{}/_sandbox/stats", sandbox.base_url()))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        admin.status(),
        StatusCode::OK,
        "faults never touch /_sandbox/"
    );
    sandbox.shutdown().await;
}

fn is_broken(row: &Value) -> bool {
    row["updated_at"] == "not-a-date" || row["id"].is_object()
}

#[tokio::test]
async fn malformed_rows_are_objects_that_do_not_parse() {
    let sandbox = spawn_sandbox(1000).await;
    let api = Api::new(&sandbox);
    sandbox.set_faults(Faults {
        malformed_share: 0.1,
        ..Faults::default()
    });

    let (_, page) = api.get_json("/v1/accounts", &[("limit", "1000")]).await;
    let rows = page["data"].as_array().expect("a data array");

    assert!(rows.iter().all(Value::is_object));
    let broken = rows.iter().filter(|row| is_broken(row)).count();
    assert!((50..150).contains(&broken), "{broken} broken rows");
    let again = api.get_json("/v1/accounts", &[("limit", "1000")]).await.1;
    assert_eq!(page, again, "the same rows are broken on every read");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_repeating_cursor_comes_back_on_the_chosen_page() {
    let sandbox = spawn_sandbox(100).await;
    let api = Api::new(&sandbox);
    sandbox.set_faults(Faults {
        repeat_cursor_on_page: Some(2),
        ..Faults::default()
    });

    let (_, first) = api.get_json("/v1/accounts", &[("limit", "10")]).await;
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    let query = [("limit", "10"), ("cursor", cursor.as_str())];
    let (_, second) = api.get_json("/v1/accounts", &query).await;

    assert_eq!(second["next_cursor"].as_str(), Some(cursor.as_str()));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_delay_slows_every_answer() {
    let sandbox = spawn_sandbox(10).await;
    let api = Api::new(&sandbox);
    sandbox.set_faults(Faults {
        delay_ms: 300,
        ..Faults::default()
    });

    let started = Instant::now();
    let (status, _) = api.get_json("/v1/owners", &[]).await;

    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_hanging_sandbox_times_clients_out_and_still_shuts_down() {
    let sandbox = spawn_sandbox(10).await;
    let faults = json!({ "hang": true });
    let admin = Client::new()
        .put(format!("{}/_sandbox/faults", sandbox.base_url()))
        .json(&faults)
        .send()
        .await
        .expect("an answer");
    assert_eq!(admin.status(), StatusCode::OK);

    let attempt = Client::new()
        .get(format!("{}/v1/accounts", sandbox.base_url()))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_millis(300))
        .send()
        .await;

    assert!(attempt.expect_err("no answer comes").is_timeout());
    tokio::time::timeout(Duration::from_secs(5), sandbox.shutdown())
        .await
        .expect("shutdown does not wait for hanging requests");
}

fn health_item(account: &str, score: Value, band: &str) -> Value {
    json!({
        "account_id": account,
        "score": score,
        "band": band,
        "measures": {"deployment": "green", "engagement": "yellow", "adoption": "red", "roi": "na"},
        "computed_at": "2025-03-15T06:00:00Z",
        "model_version": "dear-1",
    })
}

#[tokio::test]
async fn health_writes_answer_a_status_per_item() {
    let sandbox = spawn_sandbox(20).await;
    let api = Api::new(&sandbox);
    let items = vec![
        health_item("A-000001", json!(50), "yellow"),
        health_item("A-999999", json!(50), "yellow"),
        health_item("A-000002", json!(101), "green"),
        health_item("A-000003", Value::Null, "na"),
    ];

    let (status, body) = api.put("/v1/health", json!({ "items": items })).await;

    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|result| result["status"].as_u64())
        .collect();
    assert_eq!(statuses, vec![200, 404, 422, 200]);
    let health = sandbox.health();
    assert_eq!(health["A-000001"]["score"], 50);
    assert!(!health.contains_key("A-000002"));

    let too_many = vec![health_item("A-000001", json!(50), "yellow"); 101];
    let (status, problem) = api.put("/v1/health", json!({ "items": too_many })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "validation_failed");

    let writes = sandbox.writes();
    assert_eq!(writes.len(), 2);
    assert_eq!((writes[0].method.as_str(), writes[0].status), ("PUT", 200));
    assert_eq!(writes[1].status, 422);
    sandbox.shutdown().await;
}

fn task(account: &str) -> Value {
    json!({
        "account_id": account,
        "kind": "risk",
        "owner_id": "O-0001",
        "subject": "Health turned red",
        "body": "Adoption fell to RED.",
        "due_date": "2025-03-18",
        "priority": "medium",
    })
}

#[tokio::test]
async fn a_task_key_creates_once_and_conflicts_for_anything_else() {
    let sandbox = spawn_sandbox(20).await;
    let api = Api::new(&sandbox);
    let path = "/v1/tasks/risk:A-000001:2025-03-15";

    let (created, first) = api.put(path, task("A-000001")).await;
    let (replayed, second) = api.put(path, task("A-000001")).await;
    let (conflict, problem) = api.put(path, task("A-000002")).await;

    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(first["status"], "open");
    assert_eq!(replayed, StatusCode::OK);
    assert_eq!(second["id"], first["id"]);
    assert_eq!(conflict, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "conflict");
    let (bad_key, _) = api.put("/v1/tasks/has%20space", task("A-000001")).await;
    assert_eq!(bad_key, StatusCode::UNPROCESSABLE_ENTITY);

    assert!(sandbox.set_task_status("risk:A-000001:2025-03-15", "completed"));
    let (status, closed) = api.put(path, task("A-000001")).await;
    assert_eq!(
        (status, &closed["status"]),
        (StatusCode::OK, &json!("completed"))
    );
    let (_, listed) = api.get_json("/v1/tasks", &[("status", "completed")]).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(sandbox.tasks().len(), 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_closed_task_moves_forward_in_the_incremental_list() {
    let sandbox = spawn_sandbox(20).await;
    let api = Api::new(&sandbox);
    api.put("/v1/tasks/risk:A-000001:x", task("A-000001")).await;
    let (_, before) = api.get_json("/v1/tasks", &[]).await;
    let seen = text(&before["data"][0], "updated_at").to_owned();

    let url = format!(
        "{}/_sandbox/tasks/risk:A-000001:x/status",
        sandbox.base_url()
    );
    let closed = Client::new()
        .post(url)
        .json(&json!({ "status": "canceled" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(closed.status(), StatusCode::OK);

    let (_, after) = api.get_json("/v1/tasks", &[("updated_since", &seen)]).await;
    assert_eq!(after["data"][0]["status"], "canceled");
    assert!(text(&after["data"][0], "updated_at") > seen.as_str());
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_pushed_survey_response_is_then_listed() {
    let sandbox = spawn_sandbox(20).await;
    let api = Api::new(&sandbox);
    let answer = json!({
        "account_id": "A-000004",
        "contact_id": "C-000004-1",
        "survey": "nps",
        "submitted_at": "2025-03-16T09:30:00Z",
        "score": 9,
        "comment": "Great support",
    });

    let (created, _) = api
        .put("/v1/survey-responses/tp-nps-1", answer.clone())
        .await;
    let (replayed, _) = api.put("/v1/survey-responses/tp-nps-1", answer).await;
    let listed = api
        .pull_all(
            "/v1/survey-responses",
            &[("since", "2025-03-16T00:00:00Z")],
            10,
        )
        .await;

    assert_eq!((created, replayed), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], "tp-nps-1");
    assert_eq!(listed[0]["score"], 9);
    let everything = api.pull_all("/v1/survey-responses", &[], 1000).await;
    let pushed = everything.iter().filter(|r| r["id"] == "tp-nps-1").count();
    assert_eq!(pushed, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn contacts_and_activities_filter_as_the_contract_says() {
    let sandbox = spawn_sandbox(200).await;
    let api = Api::new(&sandbox);

    let contacts = api
        .pull_all("/v1/contacts", &[("account_id", "A-000007")], 100)
        .await;
    assert!(!contacts.is_empty());
    assert!(contacts.iter().all(|c| c["account_id"] == "A-000007"));

    let window = [
        ("types", "webinar"),
        ("since", "2025-01-01T00:00:00Z"),
        ("until", "2025-02-11T16:00:00Z"),
    ];
    let webinars = api.pull_all("/v1/activities", &window, 100).await;
    assert!(!webinars.is_empty());
    for row in &webinars {
        assert_eq!(row["series"], "office_hours");
        let at = text(row, "occurred_at");
        assert!(("2025-01-01".."2025-02-11T16:00:00Z").contains(&at), "{at}");
    }
    sandbox.shutdown().await;
}

fn write_csv_book(dir: &Path) {
    let files = [
        (
            "accounts.csv",
            "id,name,domain,owner_id,basic_setup_done,contract_start_date,timezone,archived,updated_at\n\
             A-1,Kalo Labs,kalo.example.com,O-1,true,2024-02-29,Europe/Berlin,false,2025-01-02T00:00:00Z\n\
             A-2,Miren Group,,O-1,,2023-05-31,,false,2025-01-01T00:00:00Z\n\
             A-3,Broken,,O-1,perhaps,2023-05-31,,false,2025-01-01T00:00:00Z\n",
        ),
        (
            "owners.csv",
            "id,email,name,timezone,active\nO-1,toma.ren@vendor.example.com,Toma Ren,Europe/London,true\n",
        ),
        (
            "contacts.csv",
            "id,account_id,email,name,persona,timezone,email_opt_out,merged_into,archived,updated_at\n\
             P-1,A-1,ana.kalo@kalo.example.com,Ana Kalo,executive_sponsor,,false,,false,2025-01-01T00:00:00Z\n",
        ),
        (
            "activities.csv",
            "id,account_id,type,series,occurred_at,outcome,contact_ids,updated_at\n\
             AC-1,A-1,call,,2025-01-10T15:00:00Z,completed,P-1,2025-01-10T16:00:00Z\n",
        ),
        (
            "survey_responses.csv",
            "id,account_id,contact_id,survey,submitted_at,score,goal_achieved,comment\n\
             SR-1,A-1,P-1,goal,2024-09-05T10:00:00Z,,true,\n",
        ),
        (
            "usage.csv",
            "account_id,feature,date,event_count,active_users\n\
             A-1,alerts,2025-02-13,4,2\n\
             A-1,alerts,2025-02-14,3,1\n\
             A-1,alerts,2025-02-14,2,2\n\
             A-1,alerts,2025-03-15,9,9\n\
             A-1,reports,2025-03-01,1,1\n\
             A-2,alerts,2025-01-01,5,5\n\
             A-2,alerts,2025-03-01,0,3\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("a CSV file");
    }
}

#[tokio::test]
async fn a_csv_book_is_served_with_usage_aggregated_per_window() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_csv_book(dir.path());
    let options = SandboxOptions {
        from_csv: Some(dir.path().to_owned()),
        anchor: anchor(),
        ..SandboxOptions::default()
    };
    let sandbox = sandbox::spawn(options)
        .await
        .expect("the CSV sandbox starts");
    let api = Api::new(&sandbox);

    let window = [("window_end", "2025-03-15"), ("window_days", "30")];
    let usage = api.pull_all("/v1/usage", &window, 100).await;

    let rows: Vec<(&str, &str, u64, u64, u64)> = usage
        .iter()
        .map(|row| {
            let count = |field: &str| row[field].as_u64().unwrap_or(u64::MAX);
            let totals = (
                count("days_active"),
                count("event_count"),
                count("active_users"),
            );
            (
                text(row, "account_id"),
                text(row, "feature"),
                totals.0,
                totals.1,
                totals.2,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("A-1", "alerts", 2, 9, 3),
            ("A-1", "reports", 1, 1, 1),
            ("A-2", "alerts", 0, 0, 3),
        ]
    );

    let only = [
        ("window_end", "2025-03-15"),
        ("window_days", "30"),
        ("features", "reports"),
    ];
    assert_eq!(api.pull_all("/v1/usage", &only, 100).await.len(), 1);

    let accounts = api.pull_all("/v1/accounts", &[], 100).await;
    let ids: Vec<&str> = accounts.iter().map(|a| text(a, "id")).collect();
    assert_eq!(ids, vec!["A-2", "A-1"]);
    assert_eq!(sandbox.stats().rejected_rows.get("accounts"), Some(&1));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_csv_book_missing_a_file_does_not_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_csv_book(dir.path());
    std::fs::remove_file(dir.path().join("activities.csv")).expect("removed");
    let options = SandboxOptions {
        from_csv: Some(dir.path().to_owned()),
        ..SandboxOptions::default()
    };

    let error = sandbox::spawn(options).await.err().expect("start-up fails");

    assert!(format!("{error:#}").contains("activities.csv"));
}

#[tokio::test]
async fn generated_usage_covers_the_key_features() {
    let sandbox = spawn_sandbox(100).await;
    let api = Api::new(&sandbox);
    let features = sandbox::KEY_FEATURES.join(",");
    let query = [
        ("window_end", "2025-03-15"),
        ("window_days", "30"),
        ("features", features.as_str()),
    ];

    let rows = api.pull_all("/v1/usage", &query, 1000).await;

    let seen: HashSet<&str> = rows.iter().map(|row| text(row, "feature")).collect();
    assert_eq!(seen.len(), 5);
    assert!(
        rows.iter()
            .all(|row| row["days_active"].as_u64() <= Some(30))
    );
    let adopted = rows
        .iter()
        .filter(|row| row["days_active"].as_u64() >= Some(4));
    assert!(adopted.count() > 100);
    sandbox.shutdown().await;
}
