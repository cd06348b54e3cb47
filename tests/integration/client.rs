//! The REST client against small servers on loopback that behave exactly as each test needs:
//! what the contract asks of a client beyond the sandbox's faults. A 429's `Retry-After` is
//! waited out before the same page is asked again, gzip bodies are read, a body over the cap
//! is refused rather than read, and the client-side rate holds.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde_json::json;
use tokio::net::TcpListener;
use touchpoint::model::{Owner, Rejected};
use touchpoint::settings::Settings;
use touchpoint::source::{RestClient, SourceError};

/// When each request reached the test server.
#[derive(Default)]
struct Seen {
    at: Vec<Instant>,
}

type Shared = Arc<Mutex<Seen>>;

/// Serves `router` on a loopback port and returns its base URL.
async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("the server runs");
    });
    format!("http://{address}/")
}

fn client(base: &str, settings: &[(&str, &str)]) -> RestClient {
    let mut env: HashMap<String, String> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.insert("TOUCHPOINT__SOURCE__BASE_URL".into(), base.into());
    let settings = Settings::load_from(None, Some(env)).expect("the settings load");
    RestClient::new(&settings.source, SecretString::from("test-token")).expect("a client")
}

fn page(owners: usize, next: Option<String>) -> serde_json::Value {
    let data: Vec<_> = (0..owners)
        .map(|i| {
            json!({
                "id": format!("O-{i}"),
                "email": format!("owner{i}@example.com"),
                "name": format!("Owner {i}"),
                "active": true,
            })
        })
        .collect();
    json!({ "data": data, "next_cursor": next })
}

async fn read_owners(client: &RestClient) -> Result<Vec<Owner>, SourceError> {
    let mut owners = Vec::new();
    let mut sink = |row: Result<Owner, Rejected>| owners.extend(row.ok());
    client
        .for_each("owners", "v1/owners", &[], &mut sink)
        .await?;
    Ok(owners)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_waited_out_for_its_retry_after_before_the_same_page_is_asked_again() {
    async fn owners(State(seen): State<Shared>) -> Response {
        let mut seen = seen.lock().expect("the log");
        seen.at.push(Instant::now());
        if seen.at.len() == 1 {
            let problem = json!({"type": "about:blank", "title": "slow down", "status": 429,
                                 "code": "rate_limited"});
            let headers = [
                (header::RETRY_AFTER, "2"),
                (header::CONTENT_TYPE, "application/problem+json"),
            ];
            return (StatusCode::TOO_MANY_REQUESTS, headers, problem.to_string()).into_response();
        }
        axum::Json(page(3, None)).into_response()
    }
    let seen = Shared::default();
    let router = Router::new()
        .route("/v1/owners", get(owners))
        .with_state(seen.clone());
    let client = client(&serve(router).await, &[]);

    let owners = read_owners(&client).await.expect("the list is read");

    assert_eq!(owners.len(), 3);
    let at = seen.lock().expect("the log").at.clone();
    assert_eq!(at.len(), 2, "one 429, then the page");
    let waited = at[1] - at[0];
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}, before the Retry-After of 2 s"
    );
    assert_eq!(client.counts().rate_limited, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_body_is_read_like_a_plain_one() {
    async fn owners(headers: HeaderMap) -> Response {
        let accepts_gzip = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("gzip"));
        assert!(accepts_gzip, "the client asks for gzip");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(page(5, None).to_string().as_bytes())
            .expect("compressed");
        let body = gzip.finish().expect("compressed");
        let headers = [
            (header::CONTENT_ENCODING, "gzip"),
            (header::CONTENT_TYPE, "application/json"),
        ];
        (StatusCode::OK, headers, body).into_response()
    }
    let router = Router::new().route("/v1/owners", get(owners));
    let client = client(&serve(router).await, &[]);

    let owners = read_owners(&client).await.expect("the list is read");

    assert_eq!(owners.len(), 5);
    assert_eq!(owners[4].name.as_deref(), Some("Owner 4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_cap_is_refused_and_names_the_setting() {
    async fn owners() -> axum::Json<serde_json::Value> {
        axum::Json(page(500, None))
    }
    let router = Router::new().route("/v1/owners", get(owners));
    let client = client(
        &serve(router).await,
        &[("TOUCHPOINT__SOURCE__MAX_BODY_BYTES", "4096")],
    );

    let error = read_owners(&client)
        .await
        .expect_err("the page is too large");

    assert!(matches!(error, SourceError::BodyTooLarge { limit: 4096 }));
    assert!(
        error.to_string().contains("source.max_body_bytes"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_side_rate_holds_across_pages() {
    async fn owners(
        State(seen): State<Shared>,
        Query(query): Query<HashMap<String, String>>,
    ) -> axum::Json<serde_json::Value> {
        seen.lock().expect("the log").at.push(Instant::now());
        let n: usize = query
            .get("cursor")
            .and_then(|c| c.strip_prefix("page-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let next = (n < 8).then(|| format!("page-{}", n + 1));
        axum::Json(page(1, next))
    }
    let seen = Shared::default();
    let router = Router::new()
        .route("/v1/owners", get(owners))
        .with_state(seen.clone());
    let client = client(
        &serve(router).await,
        &[("TOUCHPOINT__SOURCE__REQUESTS_PER_SECOND", "4")],
    );

    let owners = read_owners(&client).await.expect("the list is read");

    assert_eq!(owners.len(), 9, "nine pages of one owner each");
    let at = seen.lock().expect("the log").at.clone();
    // Four requests may go at once (a second's worth); the other five wait a quarter of a
    // second each.
    let spread = at[8] - at[0];
    assert!(
        spread >= Duration::from_millis(1200),
        "nine requests at four a second took only {spread:?}"
    );
}
