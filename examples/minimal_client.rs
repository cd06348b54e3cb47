//! The yardstick for the cycle benchmark: the least a client can do to make the same HTTP
//! requests as one touchpoint cycle and read the same bytes.
//!
//! It walks the same lists with the same parameters (reading each page only far enough to find
//! its `next_cursor`), then replays the writes the cycle made, which it reads from the
//! sandbox's `/_sandbox/writes`. No records are parsed, nothing is stored. `bench/cycle.sh`
//! runs it right after a real cycle against the same sandbox.
//!
//! Usage: `minimal_client BASE_URL AS_OF(YYYY-MM-DD) [FIRST_WRITE]`, token in
//! `TOUCHPOINT_SOURCE_TOKEN`; with FIRST_WRITE, only the writes the sandbox recorded from that
//! index on are replayed (those of a second cycle).

use std::time::Instant;

use chrono::{Days, NaiveDate};
use futures_util::{StreamExt, stream};
use serde::Deserialize;
use serde::de::IgnoredAny;

const PAGE: &str = "1000";
const KEY_FEATURES: &str = "dashboards,alerts,integrations,reports,automations";

#[derive(Deserialize)]
struct Cursor {
    #[allow(dead_code)]
    data: IgnoredAny,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Write {
    method: String,
    path: String,
    body: serde_json::Value,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// Walks one list to its end; returns (pages, bytes).
    async fn walk(&self, path: &str, params: &[(&str, String)]) -> anyhow::Result<(u64, u64)> {
        let started = Instant::now();
        let (mut pages, mut bytes) = (0, 0);
        let mut cursor: Option<String> = None;
        loop {
            let mut query = params.to_vec();
            query.push(("limit", PAGE.to_owned()));
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let body = self
                .http
                .get(format!("{}/{path}", self.base))
                .bearer_auth(&self.token)
                .query(&query)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            pages += 1;
            bytes += body.len() as u64;
            match serde_json::from_slice::<Cursor>(&body)?.next_cursor {
                Some(next) => cursor = Some(next),
                None => {
                    eprintln!(
                        "  {path}: {pages} pages in {} ms",
                        started.elapsed().as_millis()
                    );
                    return Ok((pages, bytes));
                }
            }
        }
    }

    async fn put(&self, write: &Write) -> anyhow::Result<u64> {
        let body = self
            .http
            .put(format!("{}{}", self.base, write.path))
            .bearer_auth(&self.token)
            .json(&write.body)
            .send()
            .await?
            .bytes()
            .await?;
        Ok(body.len() as u64)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8790".to_owned());
    let as_of: NaiveDate = args
        .next()
        .unwrap_or_else(|| "2025-06-02".to_owned())
        .parse()?;
    // Writes the sandbox recorded before this index belong to earlier runs (an earlier cycle,
    // or this client's own replay of it).
    let first_write: usize = args.next().map_or(Ok(0), |n| n.parse())?;
    let token = std::env::var("TOUCHPOINT_SOURCE_TOKEN").unwrap_or_else(|_| "sandbox-token".into());
    let client = Client {
        http: reqwest::Client::builder().gzip(true).build()?,
        base: base.trim_end_matches('/').to_owned(),
        token,
    };
    let started = Instant::now();

    let day = |back: u64| as_of.checked_sub_days(Days::new(back)).unwrap_or(as_of);
    let at = |d: NaiveDate| format!("{d}T00:00:00Z");
    let people = [
        ("v1/owners", vec![]),
        ("v1/accounts", vec![]),
        ("v1/contacts", vec![]),
    ];
    let evidence = [
        (
            "v1/activities",
            vec![
                ("since", at(day(90))),
                ("until", at(as_of)),
                ("types", "call,meeting,webinar".to_owned()),
            ],
        ),
        (
            "v1/usage",
            vec![
                ("window_end", as_of.to_string()),
                ("window_days", "30".to_owned()),
                ("features", KEY_FEATURES.to_owned()),
            ],
        ),
        ("v1/survey-responses", vec![("since", at(day(365 + 31)))]),
    ];
    let (mut pages, mut bytes) = (0, 0);
    for phase in [&people[..], &evidence[..]] {
        let walks = phase.iter().map(|(path, params)| client.walk(path, params));
        for result in futures_util::future::join_all(walks).await {
            let (p, b) = result?;
            pages += p;
            bytes += b;
        }
    }

    let (p, b) = client.walk("v1/tasks", &[]).await?;
    pages += p;
    bytes += b;

    let writes: Vec<Write> = client
        .http
        .get(format!("{}/_sandbox/writes", client.base))
        .send()
        .await?
        .json()
        .await?;
    let puts: Vec<&Write> = writes
        .iter()
        .skip(first_write)
        .filter(|w| w.method == "PUT")
        .collect();
    let writes_started = Instant::now();
    let mut answers = stream::iter(&puts)
        .map(|w| client.put(w))
        .buffer_unordered(4);
    while let Some(answer) = answers.next().await {
        bytes += answer?;
    }

    eprintln!(
        "  {} writes in {} ms",
        puts.len(),
        writes_started.elapsed().as_millis()
    );
    println!(
        "minimal client: {pages} pages and {} writes, {:.1} MB read, {:.2} s",
        puts.len(),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
