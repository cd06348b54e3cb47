//! Shared set-up for the daemon tests: a sandbox CRM in the test process, a temporary store,
//! and the real `touchpoint` binary started as a child process that is killed on drop.
//!
//! The machine these run on may be small and busy, so every wait polls with a generous
//! deadline instead of sleeping for a guessed time, and a failed wait prints the daemon's log.

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use tempfile::TempDir;
use touchpoint::runs::RunRecord;
use touchpoint::sandbox::{self, RecordedWrite, SandboxHandle, SandboxOptions};
use touchpoint::settings::StoreSettings;
use touchpoint::store::Store;

pub const TOKEN: &str = "daemon-test-token";
pub const BINARY: &str = env!("CARGO_BIN_EXE_touchpoint");
/// The longest any single wait may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(120);
/// The lease the tests give the daemon: short, so a takeover is quick.
pub const LEASE_TTL_SECS: u64 = 4;

/// One test's world: a sandbox CRM and a folder for the store.
pub struct World {
    pub crm: SandboxHandle,
    pub dir: TempDir,
}

impl World {
    /// A generated book of `accounts` accounts whose "today" is today.
    pub async fn new(accounts: usize) -> World {
        let crm = sandbox::spawn(SandboxOptions {
            accounts,
            seed: 11,
            anchor: Utc::now().date_naive(),
            token: TOKEN.to_owned(),
            ..SandboxOptions::default()
        })
        .await
        .expect("the sandbox starts");
        let dir = TempDir::new().expect("a temporary folder");
        World { crm, dir }
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("touchpoint.db")
    }

    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            path: self.store_path(),
            busy_timeout: Duration::from_secs(10),
        }
    }

    /// The store, opened read-only as `touchpoint runs` would.
    pub async fn store(&self) -> Store {
        Store::open_read_only(&self.store_settings())
            .await
            .expect("the store opens")
            .expect("the daemon created the store")
    }

    /// Every run, oldest first.
    pub async fn runs(&self) -> Vec<RunRecord> {
        let mut runs = self.store().await.recent_runs(10_000).await.expect("runs");
        runs.reverse();
        runs
    }

    pub fn writes(&self) -> Vec<RecordedWrite> {
        self.crm.writes()
    }

    /// The environment a daemon of this world runs with, `extra` last.
    fn environment(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let base = [
            ("TOUCHPOINT_SOURCE_TOKEN", TOKEN.to_owned()),
            ("TOUCHPOINT__SOURCE__BASE_URL", self.crm.base_url()),
            (
                "TOUCHPOINT__STORE__PATH",
                self.store_path().display().to_string(),
            ),
            ("TOUCHPOINT__HTTP__LISTEN", "127.0.0.1:0".to_owned()),
            (
                "TOUCHPOINT_LINK_SECRET",
                "daemon-test-link-secret-0123456789abcdef".to_owned(),
            ),
            (
                "TOUCHPOINT__MAIL__FILE_DIR",
                self.store_path()
                    .with_file_name("outbox")
                    .display()
                    .to_string(),
            ),
            ("TOUCHPOINT__LOG__FORMAT", "json".to_owned()),
            ("TOUCHPOINT__LOG__LEVEL", "info".to_owned()),
            ("TOUCHPOINT__SOURCE__BACKOFF_BASE_MS", "10".to_owned()),
            ("TOUCHPOINT__SOURCE__BACKOFF_MAX_MS", "50".to_owned()),
            ("TOUCHPOINT__SOURCE__REQUEST_TIMEOUT_SECS", "10".to_owned()),
            ("TOUCHPOINT__SOURCE__PAGE_SIZE", "100".to_owned()),
            ("TOUCHPOINT__SOURCE__REQUESTS_PER_SECOND", "1000".to_owned()),
            (
                "TOUCHPOINT__DAEMON__LEASE__TTL_SECS",
                LEASE_TTL_SECS.to_string(),
            ),
            (
                "TOUCHPOINT__DAEMON__LEASE__RENEW_EVERY_SECS",
                "1".to_owned(),
            ),
            (
                "TOUCHPOINT__DAEMON__SHUTDOWN_DEADLINE_SECS",
                "30".to_owned(),
            ),
            (
                "TOUCHPOINT__DAEMON__JOBS__PULL_AND_SCORE__SCHEDULE",
                "*/2 * * * * *".to_owned(),
            ),
            // Always open, so that what a test sees does not depend on the day or the hour
            // it runs at (the default window is weekdays, 09:00 to 17:00 local time).
            (
                "TOUCHPOINT__SURVEYS__SEND_WINDOW__DAYS",
                "mon,tue,wed,thu,fri,sat,sun".to_owned(),
            ),
            (
                "TOUCHPOINT__SURVEYS__SEND_WINDOW__START",
                "00:00".to_owned(),
            ),
            ("TOUCHPOINT__SURVEYS__SEND_WINDOW__END", "24:00".to_owned()),
        ];
        let mut env: Vec<(String, String)> = base
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    /// Starts `touchpoint run` and waits until its HTTP server listens.
    pub async fn daemon(&self, extra: &[(&str, &str)]) -> Daemon {
        Daemon::start(self.environment(extra)).await
    }

    /// Runs a one-shot command of the binary against this world's store.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(BINARY)
            .args(args)
            .envs(self.environment(&[]))
            .env_remove("RUST_LOG")
            .output()
            .expect("the binary runs")
    }
}

/// A `touchpoint run` child process. Dropping it kills the process.
pub struct Daemon {
    child: Child,
    logs: Arc<Mutex<Vec<Value>>>,
    pub base_url: String,
    http: reqwest::Client,
}

impl Daemon {
    async fn start(env: Vec<(String, String)>) -> Daemon {
        let mut child = Command::new(BINARY)
            .arg("run")
            .envs(env)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("a piped stderr");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || collect_logs(stderr, &sink));

        let mut daemon = Daemon {
            child,
            logs,
            base_url: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client"),
        };
        let address = daemon.wait_for_address().await;
        daemon.base_url = format!("http://{address}");
        daemon
    }

    async fn wait_for_address(&mut self) -> String {
        let started = Instant::now();
        loop {
            let found = self.logs().iter().find_map(|line| {
                line.get("address")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            if let Some(address) = found {
                return address;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon exited at start-up ({status}):\n{}",
                    self.log_text()
                );
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the daemon did not start listening:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every JSON log line so far.
    pub fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn log_text(&self) -> String {
        self.logs()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\n{}", self.log_text()));
        let status = response.status().as_u16();
        (status, response.text().await.expect("a body"))
    }

    /// `/metrics`, checked against the exposition format and parsed.
    pub async fn metrics(&self) -> Exposition {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200, "{text}");
        parse_exposition(&text).unwrap_or_else(|e| panic!("bad exposition: {e}\n{text}"))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit().await
    }

    /// Sends SIGTERM and returns at once, for a test that looks at the daemon while it stops.
    pub fn ask_to_stop(&self) {
        self.signal("TERM");
    }

    /// Sends SIGKILL: the process dies with no chance to clean up.
    pub async fn kill(&mut self) {
        self.signal("KILL");
        self.wait_exit().await;
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited on") {
                return status;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the daemon did not exit:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect_logs(stderr: std::process::ChildStderr, sink: &Mutex<Vec<Value>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else {
            return;
        };
        let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
        sink.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(value);
    }
}

/// Polls `check` until it returns `Some`, for at most [`PATIENCE`].
pub async fn wait_for<T, F, Fut>(what: &str, daemon: Option<&Daemon>, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if started.elapsed() > PATIENCE {
            let logs = daemon.map(Daemon::log_text).unwrap_or_default();
            panic!("timed out waiting for {what}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs with a status among `statuses`, oldest first.
pub fn with_status<'a>(runs: &'a [RunRecord], statuses: &[&str]) -> Vec<&'a RunRecord> {
    runs.iter()
        .filter(|run| statuses.contains(&run.status.as_str()))
        .collect()
}

/// A parsed exposition: each sample by its series (`name{labels}` as served) and value.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: HashMap<String, f64>,
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// The value of one series, which must be present.
    pub fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in {:?}", self.samples.keys()))
    }

    /// The sum of every series of the sample name `name` (all label sets).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                series.as_str() == name || series.starts_with(&format!("{name}{{"))
            })
            .map(|(_, value)| value)
            .sum()
    }
}

/// A strict reading of the OpenMetrics text format, as far as these tests need it: every
/// line is a `# HELP`, `# TYPE` or `# UNIT` of a valid family name, a sample of a declared
/// family with well-formed labels and a number, and `# EOF` ends the text.
pub fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    let mut ended = false;
    for line in text.lines() {
        if ended {
            return Err(format!("text after # EOF: {line:?}"));
        }
        if line == "# EOF" {
            ended = true;
        } else if let Some(rest) = line.strip_prefix("# ") {
            read_descriptor(rest, &mut exposition)?;
        } else {
            let (series, value) = read_sample(line, &exposition)?;
            if exposition.samples.insert(series.clone(), value).is_some() {
                return Err(format!("series {series} appears twice"));
            }
        }
    }
    if !ended {
        return Err("the text does not end with # EOF".to_owned());
    }
    Ok(exposition)
}

fn read_descriptor(rest: &str, exposition: &mut Exposition) -> Result<(), String> {
    let mut parts = rest.splitn(3, ' ');
    let (kind, name, value) = (parts.next(), parts.next(), parts.next());
    let (Some(kind), Some(name)) = (kind, name) else {
        return Err(format!("a bad descriptor: {rest:?}"));
    };
    if !is_metric_name(name) {
        return Err(format!("a bad family name {name:?}"));
    }
    match kind {
        "HELP" | "UNIT" => Ok(()),
        "TYPE" => {
            let family_type = value.unwrap_or_default();
            let known = [
                "counter",
                "gauge",
                "histogram",
                "summary",
                "info",
                "stateset",
                "unknown",
                "gaugehistogram",
            ];
            if !known.contains(&family_type) {
                return Err(format!("{name} has an unknown type {family_type:?}"));
            }
            exposition
                .types
                .insert(name.to_owned(), family_type.to_owned());
            Ok(())
        }
        other => Err(format!("an unknown descriptor {other:?}")),
    }
}

fn read_sample(line: &str, exposition: &Exposition) -> Result<(String, f64), String> {
    let (series, value) = match line.find('{') {
        Some(open) => {
            let close = line
                .rfind('}')
                .ok_or(format!("unclosed labels: {line:?}"))?;
            check_labels(&line[open + 1..close])?;
            (&line[..=close], line[close + 1..].trim())
        }
        None => line
            .split_once(' ')
            .ok_or(format!("a sample without a value: {line:?}"))?,
    };
    let name = series.split('{').next().unwrap_or_default();
    if !is_metric_name(name) {
        return Err(format!("a bad sample name {name:?}"));
    }
    let declared = [
        "", "_total", "_bucket", "_count", "_sum", "_created", "_info",
    ]
    .iter()
    .any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|family| exposition.types.contains_key(family))
    });
    if !declared {
        return Err(format!("sample {name} of an undeclared family"));
    }
    let number = value.split(' ').next().unwrap_or_default();
    let parsed = match number {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other
            .parse::<f64>()
            .map_err(|_| format!("{name} has a value that is not a number: {other:?}"))?,
    };
    Ok((series.to_owned(), parsed))
}

fn check_labels(labels: &str) -> Result<(), String> {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or(format!("a bad label in {labels:?}"))?;
        if !is_label_name(name) {
            return Err(format!("a bad label name {name:?}"));
        }
        let end = closing_quote(after).ok_or(format!("an unclosed label value in {labels:?}"))?;
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(())
}

/// The index of the quote that ends a label value, skipping escaped characters.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(i),
            _ => {}
        }
    }
    None
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
