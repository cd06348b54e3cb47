//! Keeps `docs/openapi.yaml` honest: every example in it must satisfy the schema it illustrates,
//! and the schemas must reject the mistakes bridges typically make.
//!
//! Schemas are compiled the way a response test would use them: the whole OpenAPI document is
//! the root resource and a `$ref` to `#/components/schemas/<Name>` selects one record.

use serde_json::{Value, json};

fn openapi() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml is readable");
    serde_yaml_ng::from_str(&text).expect("docs/openapi.yaml parses as YAML")
}

fn validator(doc: &Value, schema_ref: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$ref"] = json!(schema_ref);
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{schema_ref} does not compile: {e}"))
}

fn schema_errors(doc: &Value, schema_ref: &str, value: &Value) -> Vec<String> {
    validator(doc, schema_ref)
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Follows a `$ref` into `components/responses` (or any other non-schema component).
fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(pointer) if !pointer.starts_with("#/components/schemas/") => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling reference {pointer}")),
        _ => node,
    }
}

/// Every (place, schema ref, example value) documented under `paths`.
fn documented_examples(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is a map") {
        for (method, operation) in item.as_object().expect("path item is a map") {
            let mut bodies = vec![("request".to_owned(), &operation["requestBody"])];
            if let Some(responses) = operation["responses"].as_object() {
                for (status, response) in responses {
                    bodies.push((status.clone(), resolve(doc, response)));
                }
            }

            for (which, body) in bodies {
                let Some(content) = body.get("content").and_then(Value::as_object) else {
                    continue;
                };
                for media in content.values() {
                    let Some(schema_ref) = media["schema"]["$ref"].as_str() else {
                        continue;
                    };
                    let examples = media.get("examples").and_then(Value::as_object);
                    for (name, example) in examples.into_iter().flatten() {
                        let place = format!("{method} {path} {which} example `{name}`");
                        found.push((place, schema_ref.to_owned(), example["value"].clone()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_documented_example_matches_its_schema() {
    let doc = openapi();
    let examples = documented_examples(&doc);
    assert!(
        examples.len() >= 10,
        "expected an example per endpoint, found {}",
        examples.len()
    );

    let failures: Vec<String> = examples
        .iter()
        .flat_map(|(place, schema_ref, value)| {
            schema_errors(&doc, schema_ref, value)
                .into_iter()
                .map(move |error| format!("{place}: {error}"))
        })
        .collect();

    assert!(
        failures.is_empty(),
        "examples break their schemas:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_contract_record_has_a_schema() {
    let doc = openapi();
    let names = [
        "Account",
        "Owner",
        "Contact",
        "Activity",
        "UsageRow",
        "SurveyResponse",
        "Task",
        "TaskWrite",
        "HealthItem",
        "HealthResults",
        "Problem",
        "AccountPage",
        "OwnerPage",
        "ContactPage",
        "ActivityPage",
        "UsagePage",
        "SurveyResponsePage",
        "TaskPage",
    ];

    for name in names {
        let schema_ref = format!("#/components/schemas/{name}");
        assert!(
            doc.pointer(&format!("/components/schemas/{name}"))
                .is_some(),
            "missing schema {name}"
        );
        validator(&doc, &schema_ref);
    }
}

#[test]
fn optional_fields_may_be_absent_or_null_and_unknown_fields_pass() {
    let doc = openapi();
    let minimal = json!({
        "id": "A-1", "name": "Acme", "archived": false,
        "updated_at": "2025-01-01T00:00:00Z", "crm_internal_id": 991
    });
    let nulls = json!({
        "id": "A-1", "name": "Acme", "domain": null, "owner_id": null,
        "basic_setup_done": null, "contract_start_date": null, "timezone": null,
        "archived": true, "updated_at": "2025-01-01T00:00:00+02:00"
    });

    for value in [minimal, nulls] {
        let errors = schema_errors(&doc, "#/components/schemas/Account", &value);
        assert!(errors.is_empty(), "{value} rejected: {errors:?}");
    }
}

/// `base` with one field replaced (or removed, when `value` is `None`).
fn with(base: &Value, field: &str, value: Option<Value>) -> Value {
    let mut changed = base.clone();
    let object = changed.as_object_mut().expect("base is an object");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    changed
}

#[test]
fn schemas_reject_what_the_contract_forbids() {
    let doc = openapi();
    let stamp = "2025-01-01T00:00:00Z";
    let account = json!({"id": "A-1", "name": "Acme", "archived": false, "updated_at": stamp});
    let contact = json!({
        "id": "P-1", "account_id": "A-1", "email_opt_out": false,
        "archived": false, "updated_at": stamp
    });
    let health = json!({
        "account_id": "A-1", "score": 80, "band": "green",
        "measures": {
            "deployment": "green", "engagement": "green", "adoption": "green", "roi": "green"
        },
        "computed_at": stamp, "model_version": "v1"
    });
    let task = json!({
        "key": "tp:risk:A-1", "id": "T-1", "account_id": "A-1", "kind": "risk",
        "status": "open", "created_at": stamp, "updated_at": stamp
    });
    let task_write = json!({"account_id": "A-1", "kind": "risk", "owner_id": "O-1"});
    let answer = json!({"id": "S-1", "account_id": "A-1", "survey": "nps", "submitted_at": stamp});
    let problem = json!({
        "type": "about:blank", "title": "Not found", "status": 404,
        "detail": "no such account", "code": "not_found"
    });
    let page = json!({"data": [account.clone()], "next_cursor": null});

    let valid = [
        ("Account", &account),
        ("Contact", &contact),
        ("HealthItem", &health),
        ("Task", &task),
        ("TaskWrite", &task_write),
        ("SurveyResponse", &answer),
        ("Problem", &problem),
        ("AccountPage", &page),
    ];
    for (name, value) in valid {
        let errors = schema_errors(&doc, &format!("#/components/schemas/{name}"), value);
        assert!(
            errors.is_empty(),
            "{name} rejected its baseline: {errors:?}"
        );
    }

    let invalid = [
        ("Account", with(&account, "updated_at", None)),
        ("Account", with(&account, "id", Some(json!(7)))),
        ("Contact", with(&contact, "persona", Some(json!("boss")))),
        ("HealthItem", with(&health, "score", Some(json!(101)))),
        (
            "HealthItem",
            with(&health, "measures", Some(json!({"deployment": "green"}))),
        ),
        ("HealthItem", with(&health, "band", Some(json!("amber")))),
        ("Task", with(&task, "key", Some(json!("has space")))),
        ("TaskWrite", with(&task_write, "owner_id", None)),
        ("SurveyResponse", with(&answer, "score", Some(json!(11)))),
        ("Problem", with(&problem, "code", Some(json!("teapot")))),
        ("AccountPage", with(&page, "next_cursor", None)),
    ];
    for (name, value) in invalid {
        let schema_ref = format!("#/components/schemas/{name}");
        let accepted = validator(&doc, &schema_ref).is_valid(&value);
        assert!(!accepted, "{name} accepted {value}");
    }
}

/// A real sandbox, asked for every list and write of the contract: each answer must satisfy
/// the schema `docs/openapi.yaml` gives for it.
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_responses_match_the_openapi_schemas() {
    use touchpoint::sandbox::{self, SandboxOptions};

    let doc = openapi();
    let crm = sandbox::spawn(SandboxOptions {
        accounts: 200,
        anchor: chrono::NaiveDate::from_ymd_opt(2025, 6, 2).expect("a date"),
        ..SandboxOptions::default()
    })
    .await
    .expect("the sandbox starts");
    let http = reqwest::Client::new();
    let base = crm.base_url();
    let get = |path: String| {
        let request = http
            .get(format!("{base}/{path}"))
            .bearer_auth("sandbox-token");
        async move {
            let response = request.send().await.expect("the sandbox answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("JSON"),
            )
        }
    };
    let check = |schema: &str, value: &Value| {
        let errors = schema_errors(&doc, &format!("#/components/schemas/{schema}"), value);
        assert!(errors.is_empty(), "{schema}: {errors:?}");
    };

    let lists = [
        ("AccountPage", "v1/accounts?limit=1000"),
        ("OwnerPage", "v1/owners"),
        ("ContactPage", "v1/contacts?limit=1000"),
        (
            "ActivityPage",
            "v1/activities?since=2025-01-01T00:00:00Z&until=2025-06-02T00:00:00Z&limit=1000",
        ),
        (
            "UsagePage",
            "v1/usage?window_end=2025-06-02&window_days=30&limit=1000",
        ),
        (
            "SurveyResponsePage",
            "v1/survey-responses?since=2024-01-01T00:00:00Z&limit=1000",
        ),
    ];
    for (schema, path) in lists {
        let (status, page) = get(path.to_owned()).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !page["data"].as_array().expect("data").is_empty(),
            "{path} has rows"
        );
        check(schema, &page);
    }

    let (_, accounts) = get("v1/accounts?limit=1".to_owned()).await;
    let account = accounts["data"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let (_, owners) = get("v1/owners".to_owned()).await;
    let owner = owners["data"][0]["id"].as_str().expect("an id").to_owned();
    let health = json!({"items": [{
        "account_id": account, "score": 50, "band": "yellow",
        "measures": {"deployment": "green", "engagement": "yellow", "adoption": "red", "roi": "na"},
        "computed_at": "2025-06-02T00:00:00Z", "model_version": "dear-1"
    }]});
    let put = |path: String, body: Value| {
        let request = http
            .put(format!("{base}/{path}"))
            .bearer_auth("sandbox-token")
            .json(&body);
        async move {
            let response = request.send().await.expect("the sandbox answers");
            (
                response.status().as_u16(),
                response.json::<Value>().await.expect("JSON"),
            )
        }
    };
    let (status, results) = put("v1/health".to_owned(), health).await;
    assert_eq!(status, 200);
    check("HealthResults", &results);

    let task = json!({
        "account_id": account, "kind": "risk", "owner_id": owner, "subject": "Check in",
        "body": "Why: a test", "due_date": "2025-06-04", "priority": "high"
    });
    let (status, created) = put("v1/tasks/openapi-check-1".to_owned(), task).await;
    assert_eq!(status, 201);
    check("Task", &created);
    let (_, tasks) = get("v1/tasks".to_owned()).await;
    check("TaskPage", &tasks);

    let (status, problem) = get("v1/accounts?limit=5000".to_owned()).await;
    assert_eq!(status, 422);
    check("Problem", &problem);
    let unauthorized = http
        .get(format!("{base}/v1/accounts"))
        .send()
        .await
        .expect("the sandbox answers");
    assert_eq!(unauthorized.status().as_u16(), 401);
    check("Problem", &unauthorized.json().await.expect("JSON"));
}
