//! Writing scores back to the CRM through `PUT /v1/health`.
//!
//! Only accounts whose score, band or measures differ from what the CRM last accepted are sent,
//! in batches of at most the contract's 100 items, several batches in flight at once. The CRM
//! answers a status per item; only items it stored (`200`) are marked as written, so a refused
//! or failed item is sent again next cycle. Once the CRM answers with its daily limit, the
//! batches still waiting are not sent at all (they too go next cycle).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::scoring::Colour;
use crate::settings::WritebackSettings;
use crate::source::{RestClient, SourceError};
use crate::store::{Store, StoredScore};

/// One account's score as the contract writes it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthItem {
    pub account_id: String,
    pub score: Option<u8>,
    pub band: Colour,
    pub measures: Measures,
    pub computed_at: DateTime<Utc>,
    pub model_version: String,
    /// Not sent: what to record once the CRM stored the item.
    #[serde(skip)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measures {
    pub deployment: Colour,
    pub engagement: Colour,
    pub adoption: Colour,
    pub roi: Colour,
}

impl HealthItem {
    pub fn new(
        account_id: &str,
        scored: &StoredScore,
        computed_at: DateTime<Utc>,
        model_version: &str,
    ) -> Self {
        let [deployment, engagement, adoption, roi] = scored.measures;
        Self {
            account_id: account_id.to_owned(),
            score: scored.score,
            band: scored.band,
            measures: Measures {
                deployment,
                engagement,
                adoption,
                roi,
            },
            computed_at,
            model_version: model_version.to_owned(),
            fingerprint: scored.fingerprint(),
        }
    }
}

#[derive(Serialize)]
struct HealthBatch<'a> {
    items: &'a [HealthItem],
}

#[derive(Debug, Deserialize)]
struct HealthResults {
    results: Vec<ItemResult>,
}

#[derive(Debug, Deserialize)]
struct ItemResult {
    account_id: String,
    status: u16,
}

/// What a write-back did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WritebackReport {
    pub attempted: usize,
    /// Items the CRM stored.
    pub stored_count: usize,
    /// `(account_id, status)` of items the CRM refused (404 unknown account, 422 invalid).
    pub refused: Vec<(String, u16)>,
    /// Batches that failed as a whole after their retries, with the reason.
    pub failed_batches: Vec<String>,
    /// Items not sent at all because the CRM's daily limit was reached earlier in the run.
    pub not_sent: usize,
}

/// Sends every item it receives, batch by batch, several batches in flight at once, records
/// in `store` each item the CRM stored as soon as its batch is answered, and reports what the
/// CRM did. Items arrive in chunks while the cycle is still scoring, so the CRM's round trips
/// overlap the scoring and the store's writes; the report is complete once the sender is
/// dropped. Items must be saved before they are sent: marking one written updates its row.
pub async fn write_back(
    client: RestClient,
    settings: WritebackSettings,
    chunks: mpsc::Receiver<Vec<HealthItem>>,
    store: Option<Store>,
) -> WritebackReport {
    let started = std::time::Instant::now();
    let size = settings.batch_size.max(1);
    let batches = stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    })
    .flat_map(|chunk| stream::iter(in_batches(chunk, size)));
    let client = &client;
    let answers = batches
        .map(|batch| async move {
            if client.daily_limit_reached() {
                return (batch, None);
            }
            let answer = put_batch(client, &batch).await;
            (batch, Some(answer))
        })
        .buffer_unordered(settings.concurrency.max(1));
    let mut answers = std::pin::pin!(answers);

    let mut report = WritebackReport::default();
    while let Some((batch, answer)) = answers.next().await {
        let Some(answer) = answer else {
            report.not_sent += batch.len();
            continue;
        };
        report.attempted += batch.len();
        match answer {
            Ok(results) => {
                let stored = record_results(&mut report, &batch, results);
                mark_written(store.as_ref(), &stored).await;
            }
            Err(e) => {
                tracing::warn!(items = batch.len(), "a health write-back batch failed: {e}");
                report.failed_batches.push(e.to_string());
            }
        }
    }
    tracing::debug!(
        attempted = report.attempted,
        stored = report.stored_count,
        duration_ms = started.elapsed().as_millis() as u64,
        "wrote scores back"
    );
    report
}

/// Splits a chunk into batches of at most `size` items.
fn in_batches(mut chunk: Vec<HealthItem>, size: usize) -> Vec<Vec<HealthItem>> {
    let mut batches = Vec::with_capacity(chunk.len().div_ceil(size));
    while chunk.len() > size {
        let rest = chunk.split_off(size);
        batches.push(std::mem::replace(&mut chunk, rest));
    }
    if !chunk.is_empty() {
        batches.push(chunk);
    }
    batches
}

async fn put_batch(
    client: &RestClient,
    batch: &[HealthItem],
) -> Result<HealthResults, SourceError> {
    client.put("v1/health", &HealthBatch { items: batch }).await
}

/// Records one batch's answers in the report and returns `(account_id, fingerprint)` of the
/// items the CRM stored.
fn record_results(
    report: &mut WritebackReport,
    batch: &[HealthItem],
    results: HealthResults,
) -> Vec<(String, String)> {
    let by_id: HashMap<&str, &HealthItem> =
        batch.iter().map(|i| (i.account_id.as_str(), i)).collect();
    let mut stored = Vec::with_capacity(batch.len());
    for result in results.results {
        let Some(item) = by_id.get(result.account_id.as_str()) else {
            continue;
        };
        if result.status == 200 {
            stored.push((item.account_id.clone(), item.fingerprint.clone()));
        } else {
            tracing::warn!(
                account.id = %item.account_id,
                status = result.status,
                "the CRM refused a health item"
            );
            report
                .refused
                .push((item.account_id.clone(), result.status));
        }
    }
    report.stored_count += stored.len();
    stored
}

/// Stamps the items the CRM stored, so the next cycle writes only what changed since. If the
/// stamp fails, those items stay unconfirmed and the next cycle sends them again: the write is
/// idempotent.
async fn mark_written(store: Option<&Store>, stored: &[(String, String)]) {
    let Some(store) = store.filter(|_| !stored.is_empty()) else {
        return;
    };
    if let Err(e) = store.mark_written(stored, Utc::now()).await {
        tracing::warn!(
            items = stored.len(),
            "could not record scores the CRM stored: {e:#}"
        );
    }
}
