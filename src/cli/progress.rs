//! A spinner on stderr while a long one-shot run works, when stderr is a terminal.

use std::future::Future;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::source::RestClient;

/// Runs `work`, showing the CRM requests and bytes read so far on a spinner.
pub async fn while_running<T>(show: bool, client: &RestClient, work: impl Future<Output = T>) -> T {
    if !show {
        return work.await;
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut ticker = tokio::time::interval(Duration::from_millis(150));
    tokio::pin!(work);
    let result = loop {
        tokio::select! {
            result = &mut work => break result,
            _ = ticker.tick() => {
                let counts = client.counts();
                spinner.set_message(format!(
                    "{} CRM requests, {:.1} MB read, {} retries",
                    counts.requests,
                    counts.bytes as f64 / 1e6,
                    counts.retries
                ));
                spinner.tick();
            }
        }
    };
    spinner.finish_and_clear();
    result
}
