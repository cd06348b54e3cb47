//! Shared set-up: a sandbox per test, settings pointed at it, a store in a temporary folder.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use secrecy::SecretString;
use tempfile::TempDir;
use touchpoint::cli::{Secrets, cycle_with_secrets};
use touchpoint::cycle::{CycleReport, Mode};
use touchpoint::sandbox::{self, Faults, SandboxHandle, SandboxOptions};
use touchpoint::settings::Settings;
use touchpoint::store::Store;

pub const TOKEN: &str = "test-token";

/// One test's world: a sandbox CRM, settings that point at it, and a store of its own.
pub struct App {
    pub crm: SandboxHandle,
    pub settings: Settings,
    pub dir: TempDir,
}

pub fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
}

pub fn start_of(text: &str) -> DateTime<Utc> {
    day(text).and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Settings for a test: fast retries and short timeouts so fault tests finish quickly.
/// Surveys are off unless a test turns them on (`TOUCHPOINT__SURVEYS__ENABLED=true`); their
/// emails then go into the test's temporary folder.
pub fn settings_for(base_url: &str, dir: &Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("TOUCHPOINT__SOURCE__BASE_URL".into(), base_url.to_owned()),
        (
            "TOUCHPOINT__STORE__PATH".into(),
            dir.join("touchpoint.db").display().to_string(),
        ),
        ("TOUCHPOINT__SOURCE__BACKOFF_BASE_MS".into(), "10".into()),
        ("TOUCHPOINT__SOURCE__BACKOFF_MAX_MS".into(), "50".into()),
        (
            "TOUCHPOINT__SOURCE__REQUEST_TIMEOUT_SECS".into(),
            "5".into(),
        ),
        ("TOUCHPOINT__SOURCE__PAGE_SIZE".into(), "100".into()),
        ("TOUCHPOINT__SURVEYS__ENABLED".into(), "false".into()),
        (
            "TOUCHPOINT__MAIL__FILE_DIR".into(),
            dir.join("outbox").display().to_string(),
        ),
        (
            "TOUCHPOINT__SOURCE__REQUESTS_PER_SECOND".into(),
            "1000".into(),
        ),
    ]);
    for (key, value) in extra {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    Settings::load_from(None, Some(env)).expect("test settings are valid")
}

impl App {
    /// A generated book of `accounts` accounts whose "today" is `anchor`.
    pub async fn generated(accounts: usize, anchor: &str) -> App {
        Self::start(SandboxOptions {
            accounts,
            seed: 7,
            anchor: day(anchor),
            token: TOKEN.to_owned(),
            ..SandboxOptions::default()
        })
        .await
    }

    /// A sandbox serving the CSV book in `book`.
    pub async fn from_csv(book: &Path) -> App {
        Self::start(SandboxOptions {
            from_csv: Some(book.to_owned()),
            token: TOKEN.to_owned(),
            ..SandboxOptions::default()
        })
        .await
    }

    async fn start(options: SandboxOptions) -> App {
        let crm = sandbox::spawn(options).await.expect("the sandbox starts");
        let dir = TempDir::new().expect("a temporary folder");
        let settings = settings_for(&crm.base_url(), dir.path(), &[]);
        App { crm, settings, dir }
    }

    pub fn with(mut self, extra: &[(&str, &str)]) -> App {
        self.settings = settings_for(&self.crm.base_url(), self.dir.path(), extra);
        self
    }

    pub fn faults(&self, faults: Faults) {
        self.crm.set_faults(faults);
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.settings.store)
            .await
            .expect("the store opens")
    }

    pub async fn cycle(&self, as_of: &str) -> CycleReport {
        self.run(as_of, Mode::Act).await
    }

    pub async fn plan(&self, as_of: &str) -> CycleReport {
        self.run(as_of, Mode::Plan).await
    }

    async fn run(&self, as_of: &str, mode: Mode) -> CycleReport {
        self.run_with(as_of, mode, true)
            .await
            .expect("the cycle runs to a report")
    }

    /// A cycle that may end with an error (a test that breaks the store on purpose).
    pub async fn try_cycle(&self, as_of: &str) -> anyhow::Result<CycleReport> {
        self.run_with(as_of, Mode::Act, true).await
    }

    /// A connection of the test's own to the store file, for changes no command makes.
    pub async fn raw_store(&self) -> sqlx::SqlitePool {
        let url = format!("sqlite://{}", self.settings.store.path.display());
        sqlx::SqlitePool::connect(&url)
            .await
            .expect("the store opens")
    }

    /// A cycle as of a past day the way a person types it, without `--act-on-past`: the test
    /// books are dated in the past, so the other helpers act as a live cycle would.
    pub async fn replay(&self, as_of: &str) -> CycleReport {
        self.run_with(as_of, Mode::Act, false)
            .await
            .expect("the cycle runs to a report")
    }

    async fn run_with(
        &self,
        as_of: &str,
        mode: Mode,
        act_on_past: bool,
    ) -> anyhow::Result<CycleReport> {
        let store = match mode {
            Mode::Act => Some(self.store().await),
            Mode::Plan => Store::open_read_only(&self.settings.store)
                .await
                .expect("the store opens read-only"),
        };
        let command = if mode == Mode::Act { "cycle" } else { "plan" };
        let secrets = Secrets {
            crm_token: Some(SecretString::from(TOKEN)),
            act_on_past,
            ..Secrets::default()
        };
        cycle_with_secrets(
            &self.settings,
            store.as_ref(),
            command,
            start_of(as_of),
            mode,
            secrets,
        )
        .await
    }
}
