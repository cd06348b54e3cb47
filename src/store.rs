//! The SQLite store: runs, each account's latest score and receipt, and the history of changes.
//!
//! It owns persistence only; it never decides what a score is or whether to write it back. The
//! file runs in WAL mode with a busy timeout so a reader (`explain`, a second instance) never
//! blocks a cycle. Score writes are batched in transactions. History keeps a row only when an
//! account's score, band or a measure changes, so it stays small however often cycles run,
//! while `account_scores` always holds the receipt of the newest day scored: a replay of an
//! older day adds to the history and leaves the latest score alone. A receipt is written once:
//! when a score joins the history, its history row holds the receipt and the latest row an
//! empty one that points there (same account, same run); an unchanged score's latest row holds
//! its own, since its windows move with every cycle.
//!
//! The SQL is kept portable (TEXT timestamps, `$n` parameters, `ON CONFLICT` upserts) so a
//! PostgreSQL backend can follow without rewriting it.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::model::Rejected;
use crate::scoring::Colour;
use crate::settings::StoreSettings;

/// The receipt an account's latest row holds when the history row of the same run holds the
/// real one (it never parses as JSON, so it cannot be mistaken for a receipt).
const IN_HISTORY: &str = "";

/// Rows per transaction when saving scores: large enough to amortise the commit, small enough
/// that a reader is never locked out for long.
const BATCH_ROWS: usize = 2000;
/// The page size of a new store file (an existing file keeps its own). A receipt is a couple
/// of kilobytes: on 4 KiB pages only one fits a page and half of every page is lost, on
/// 16 KiB pages six fit, which halves the bytes a cycle writes.
const PAGE_SIZE: u32 = 16384;
/// Rows per multi-row statement: 13 parameters a row stays far below SQLite's limit of 32,766
/// parameters a statement, and a statement this size amortises its round trip.
const ROWS_PER_STATEMENT: usize = 200;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Every list was read and every account scored.
    Succeeded,
    /// Some records were rejected (their accounts held back), or some scores did not reach
    /// the CRM; the rest was done.
    Partial,
    /// A list could not be read (or came back incomplete): nothing was scored or written.
    Failed,
    /// Stopped before anything was stored (the daemon was shutting down, or died mid-run).
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// What is known about a run when it starts.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub id: String,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub as_of: DateTime<Utc>,
    pub config_version: String,
    pub source: String,
}

/// An account's score as stored (colours as their lowercase names). Plain colours rather than
/// text: a cycle keeps two of these for every account of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoredScore {
    pub score: Option<u8>,
    pub band: Colour,
    /// deployment, engagement, adoption, roi; serialised as an object with those names.
    #[serde(serialize_with = "measures_by_name")]
    pub measures: [Colour; 4],
}

impl StoredScore {
    /// The exact content written to the CRM; equal fingerprints need no new write.
    pub fn fingerprint(&self) -> String {
        let score = self.score.map_or("na".to_owned(), |s| s.to_string());
        let measures = self.measures.map(Colour::as_str).join("|");
        format!("{score}|{}|{measures}", self.band)
    }

    /// The score a [`StoredScore::fingerprint`] was made from; `None` for anything else.
    pub fn from_fingerprint(text: &str) -> Option<StoredScore> {
        let mut parts = text.split('|');
        let score = match parts.next()? {
            "na" => None,
            number => Some(number.parse::<u8>().ok().filter(|s| *s <= 100)?),
        };
        let band = Colour::parse(parts.next()?)?;
        let mut measures = [Colour::Na; 4];
        for measure in &mut measures {
            *measure = Colour::parse(parts.next()?)?;
        }
        parts.next().is_none().then_some(StoredScore {
            score,
            band,
            measures,
        })
    }
}

/// An account's latest stored score and what the CRM last accepted.
#[derive(Debug, Clone)]
pub struct Latest {
    pub scored: StoredScore,
    /// What the CRM last accepted, read back from its fingerprint.
    pub written: Option<StoredScore>,
    /// The day the band turned red, while it stays red (none for a baseline that was red).
    pub red_since: Option<NaiveDate>,
}

/// A score to save.
#[derive(Debug, Clone)]
pub struct ScoreRow {
    pub account_id: String,
    pub scored: StoredScore,
    pub trend: String,
    pub receipt: String,
    pub red_since: Option<NaiveDate>,
    /// Whether this differs from the previous score (or is the first): it then joins the history.
    pub changed: bool,
    /// Whether this becomes the account's latest score. A replay of a day older than the stored
    /// latest score only adds to the history: the latest row stays what the newest day said.
    pub latest: bool,
    /// The fingerprint of what the CRM holds, as far as the store knows once this row is saved:
    /// the last confirmed one, or `None` when this cycle sends the score (until the CRM
    /// confirms it, what it holds is unknown, so a cycle that dies in between sends it again).
    pub written: Option<String>,
}

/// What the history says about an account whose latest score is newer than the day a replay
/// scores: the score in force just before that day, and what an earlier replay of the very
/// same instant recorded.
#[derive(Debug, Clone, Default)]
pub struct Earlier {
    /// The last history row before the replayed instant, with the day it turned red.
    pub before: Option<Latest>,
    /// The last history row at the replayed instant itself.
    pub same_instant: Option<StoredScore>,
}

/// A row of an account's history, for `explain`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub run_id: String,
    pub as_of: String,
    #[serde(flatten)]
    pub scored: StoredScore,
}

/// Everything `explain` shows about one account.
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    /// Set when this is the score in force on a past day (`explain --as-of`) rather than the
    /// latest one; `written_at` is then unknown and `history` ends with this score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_force_on: Option<NaiveDate>,
    pub account_id: String,
    pub run_id: String,
    pub as_of: String,
    #[serde(flatten)]
    pub scored: StoredScore,
    pub trend: String,
    pub config_version: String,
    pub receipt: serde_json::Value,
    pub written_at: Option<String>,
    pub history: Vec<HistoryRow>,
}

fn measures_by_name<S: serde::Serializer>(
    measures: &[Colour; 4],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(4))?;
    for (name, colour) in ["deployment", "engagement", "adoption", "roi"]
        .iter()
        .zip(measures)
    {
        map.serialize_entry(name, colour)?;
    }
    map.end()
}

pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A timestamp with milliseconds, for the start and end of runs, whose durations are often
/// under a second.
pub fn precise_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// The connection pool, for the modules that keep their own tables here (the task ledger).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens (creating if needed) the store file and brings its schema up to date.
    pub async fn open(settings: &StoreSettings) -> anyhow::Result<Self> {
        if let Some(parent) = settings.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create the folder {}", parent.display()))?;
        }
        // Two processes opening a new store at once would both create its tables; the lock
        // makes the second wait until the first has migrated, then find nothing to do.
        let _setup = setup_lock(&settings.path).await?;
        let options = Self::options(&settings.path, settings)?.create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| {
                format!(
                    "failed to open the store {} (if it is locked, another touchpoint process \
                     is writing to it: wait for it, or stop it)",
                    settings.path.display()
                )
            })?;
        sqlx::migrate!()
            .run(&pool)
            .await
            .with_context(|| format!("failed to migrate the store {}", settings.path.display()))?;
        Ok(Self { pool })
    }

    /// Opens an existing store read-only (for `plan` and `explain`, which change nothing).
    /// Returns `None` when there is no store file yet.
    pub async fn open_read_only(settings: &StoreSettings) -> anyhow::Result<Option<Self>> {
        if !settings.path.exists() {
            return Ok(None);
        }
        let options = Self::options(&settings.path, settings)?.read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .with_context(|| format!("failed to open the store {}", settings.path.display()))?;
        let store = Self { pool };
        store.check_schema(&settings.path).await?;
        Ok(Some(store))
    }

    /// A read-only opener cannot migrate: it refuses a store whose schema is older than this
    /// binary's with a message that says how to upgrade it, instead of failing later on a
    /// missing table.
    async fn check_schema(&self, path: &Path) -> anyhow::Result<()> {
        let newest = sqlx::migrate!()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .unwrap_or(None);
        match applied {
            Some(version) if version >= newest => Ok(()),
            _ => anyhow::bail!(
                "the store {} was made by an older touchpoint, is being set up or upgraded by \
                 another touchpoint process right now (try again in a moment), or is not a \
                 touchpoint store; run `touchpoint cycle` or start the daemon once to upgrade it",
                path.display()
            ),
        }
    }

    fn options(path: &Path, settings: &StoreSettings) -> anyhow::Result<SqliteConnectOptions> {
        let url = format!("sqlite://{}", path.display());
        Ok(SqliteConnectOptions::from_str(&url)
            .with_context(|| format!("{} is not a usable store path", path.display()))?
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(settings.busy_timeout))
    }

    pub async fn begin_run(&self, run: &RunStart) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO runs (id, command, started_at, as_of, status, config_version, source)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&run.id)
        .bind(&run.command)
        .bind(precise_timestamp(run.started_at))
        .bind(timestamp(run.as_of))
        .bind(RunStatus::Running.as_str())
        .bind(&run.config_version)
        .bind(&run.source)
        .execute(&self.pool)
        .await
        .with_context(|| format!("failed to record the start of run {}", run.id))?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        reason: Option<&str>,
        accounts_pulled: Option<u64>,
        summary: &serde_json::Value,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE runs SET finished_at = $2, status = $3, reason = $4, accounts_pulled = $5,
             summary = $6 WHERE id = $1",
        )
        .bind(run_id)
        .bind(precise_timestamp(Utc::now()))
        .bind(status.as_str())
        .bind(reason)
        .bind(accounts_pulled.map(|n| n as i64))
        .bind(summary.to_string())
        .execute(&self.pool)
        .await
        .with_context(|| format!("failed to record the end of run {run_id}"))?;
        Ok(())
    }

    /// Puts `reason` before the reason run `run_id` ended with, for what only the caller
    /// learnt (a one-shot cycle that lost its lease while it ran).
    pub async fn prefix_run_reason(&self, run_id: &str, reason: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE runs SET reason = CASE WHEN reason IS NULL THEN $2 ELSE $2 || '; ' || reason END
             WHERE id = $1",
        )
        .bind(run_id)
        .bind(reason)
        .execute(&self.pool)
        .await
        .with_context(|| format!("failed to record why run {run_id} stopped"))?;
        Ok(())
    }

    /// The number of accounts the last run that read the whole book pulled.
    pub async fn last_complete_book_size(&self) -> anyhow::Result<Option<u64>> {
        let row = sqlx::query(
            "SELECT accounts_pulled FROM runs
             WHERE status IN ('succeeded', 'partial') AND accounts_pulled IS NOT NULL
             ORDER BY started_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .context("failed to read the last run's book size")?;
        Ok(row.map(|r| r.get::<i64, _>(0) as u64))
    }

    pub async fn save_rejections(&self, run_id: &str, rejected: &[Rejected]) -> anyhow::Result<()> {
        for (chunk_no, chunk) in rejected.chunks(BATCH_ROWS).enumerate() {
            let mut tx = self
                .pool
                .begin()
                .await
                .context("failed to start a transaction")?;
            for (i, r) in chunk.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO run_rejections (run_id, seq, dataset, record_id, account_id, reason)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(run_id)
                .bind((chunk_no * BATCH_ROWS + i) as i64)
                .bind(&r.dataset)
                .bind(&r.record_id)
                .bind(&r.account_id)
                .bind(&r.reason)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("failed to record a rejected {} row", r.dataset))?;
            }
            tx.commit()
                .await
                .context("failed to commit rejected rows")?;
        }
        Ok(())
    }

    pub async fn save_config_version(&self, version: &str, body: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO config_versions (version, body, first_seen) VALUES ($1, $2, $3)
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(version)
        .bind(body)
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await
        .with_context(|| format!("failed to record config version {version}"))?;
        Ok(())
    }

    /// Every account's latest score, keyed by account id. Rows are read one at a time: a
    /// large book's rows, all at once, would cost more memory than the map they become.
    pub async fn latest_scores(&self) -> anyhow::Result<HashMap<Box<str>, Latest>> {
        let mut rows = sqlx::query(
            "SELECT account_id, score, band, deployment, engagement, adoption, roi, written,
                    red_since
             FROM account_scores",
        )
        .fetch(&self.pool);
        let mut latest = HashMap::new();
        while let Some(row) = rows
            .try_next()
            .await
            .context("failed to read the latest scores")?
        {
            let score = Latest {
                scored: stored_score(&row),
                written: row
                    .get::<Option<&str>, _>("written")
                    .and_then(StoredScore::from_fingerprint),
                red_since: row
                    .get::<Option<&str>, _>("red_since")
                    .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
            };
            latest.insert(row.get::<&str, _>("account_id").into(), score);
        }
        Ok(latest)
    }

    /// For every account whose latest score is newer than `as_of`, what its history holds up
    /// to `as_of` (see [`Earlier`]). A replay of an older day compares with these, never with
    /// the newer latest score.
    pub async fn earlier_scores(
        &self,
        as_of: DateTime<Utc>,
    ) -> anyhow::Result<HashMap<String, Earlier>> {
        let as_of = timestamp(as_of);
        let rows = sqlx::query(
            "SELECT s.account_id, h.as_of AS history_as_of, h.score, h.band, h.deployment,
                    h.engagement, h.adoption, h.roi
             FROM account_scores s
             LEFT JOIN score_history h ON h.account_id = s.account_id AND h.as_of <= $1
             WHERE s.as_of > $1
             ORDER BY s.account_id, h.as_of, h.run_id",
        )
        .bind(&as_of)
        .fetch_all(&self.pool)
        .await
        .context("failed to read the history before the replayed day")?;

        let mut earlier: HashMap<String, Earlier> = HashMap::new();
        for row in rows {
            let entry = earlier.entry(row.get("account_id")).or_default();
            let Some(at) = row.get::<Option<String>, _>("history_as_of") else {
                continue;
            };
            let scored = stored_score(&row);
            if at == as_of {
                entry.same_instant = Some(scored);
            } else {
                entry.before = Some(next_in_history(entry.before.take(), scored, at));
            }
        }
        Ok(earlier)
    }

    /// Saves a cycle's scores: multi-row statements inside one transaction per chunk, so a
    /// book of 100,000 accounts costs a few thousand statements, not 200,000.
    pub async fn save_scores(
        &self,
        run_id: &str,
        as_of: DateTime<Utc>,
        config_version: &str,
        rows: &[ScoreRow],
    ) -> anyhow::Result<()> {
        let as_of = timestamp(as_of);
        for chunk in rows.chunks(BATCH_ROWS) {
            let mut tx = self
                .pool
                .begin()
                .await
                .context("failed to start a transaction")?;
            for group in chunk.chunks(ROWS_PER_STATEMENT) {
                let latest: Vec<&ScoreRow> = group.iter().filter(|r| r.latest).collect();
                if !latest.is_empty() {
                    upsert_latest(&mut tx, run_id, &as_of, config_version, &latest).await?;
                }
                let changed: Vec<&ScoreRow> = group.iter().filter(|r| r.changed).collect();
                if !changed.is_empty() {
                    insert_history(&mut tx, run_id, &as_of, config_version, &changed).await?;
                }
            }
            tx.commit().await.context("failed to commit scores")?;
        }
        Ok(())
    }

    /// Records what the CRM accepted, so the next cycle writes only what changed.
    pub async fn mark_written(
        &self,
        written: &[(String, String)],
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let at = timestamp(at);
        for chunk in written.chunks(BATCH_ROWS) {
            let mut tx = self
                .pool
                .begin()
                .await
                .context("failed to start a transaction")?;
            for group in chunk.chunks(ROWS_PER_STATEMENT) {
                // `column1`/`column2` are the names both SQLite and PostgreSQL give the columns
                // of a VALUES list.
                let mut update = QueryBuilder::<Sqlite>::new(
                    "UPDATE account_scores SET written = v.column2, written_at = ",
                );
                update.push_bind(&at).push(" FROM (");
                update.push_values(group, |mut row, (account_id, fingerprint)| {
                    row.push_bind(account_id).push_bind(fingerprint);
                });
                update.push(") AS v WHERE account_scores.account_id = v.column1");
                update
                    .build()
                    .execute(&mut *tx)
                    .await
                    .context("failed to mark accounts as written")?;
            }
            tx.commit()
                .await
                .context("failed to commit written marks")?;
        }
        Ok(())
    }

    /// The latest receipt and the change history of one account.
    pub async fn explain(&self, account_id: &str) -> anyhow::Result<Option<Explained>> {
        let Some(row) = sqlx::query(
            "SELECT s.account_id, s.run_id, s.as_of, s.score, s.band, s.deployment, s.engagement,
                    s.adoption, s.roi, s.trend, s.config_version, s.written_at,
                    CASE WHEN s.receipt = $2 THEN h.receipt ELSE s.receipt END AS receipt
             FROM account_scores s
             LEFT JOIN score_history h
                 ON s.receipt = $2 AND h.account_id = s.account_id AND h.run_id = s.run_id
             WHERE s.account_id = $1",
        )
        .bind(account_id)
        .bind(IN_HISTORY)
        .fetch_optional(&self.pool)
        .await
        .with_context(|| format!("failed to read the score of account {account_id}"))?
        else {
            return Ok(None);
        };

        let history = sqlx::query(
            "SELECT run_id, as_of, score, band, deployment, engagement, adoption, roi
             FROM score_history WHERE account_id = $1 ORDER BY as_of, run_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .with_context(|| format!("failed to read the history of account {account_id}"))?
        .iter()
        .map(|h| HistoryRow {
            run_id: h.get("run_id"),
            as_of: h.get("as_of"),
            scored: stored_score(h),
        })
        .collect();

        let receipt: Option<String> = row.get("receipt");
        let receipt = receipt.with_context(|| {
            format!(
                "the receipt of account {account_id}'s latest score is missing from its history"
            )
        })?;
        Ok(Some(Explained {
            in_force_on: None,
            account_id: row.get("account_id"),
            run_id: row.get("run_id"),
            as_of: row.get("as_of"),
            scored: stored_score(&row),
            trend: row.get("trend"),
            config_version: row.get("config_version"),
            receipt: serde_json::from_str(&receipt).context("a stored receipt is not JSON")?,
            written_at: row.get("written_at"),
            history,
        }))
    }

    /// The score of one account in force on `day`: its latest history row at or before the end
    /// of that (UTC) day, with that row's receipt, and the history up to it. `None` when the
    /// account had no score yet by then.
    pub async fn explain_as_of(
        &self,
        account_id: &str,
        day: NaiveDate,
    ) -> anyhow::Result<Option<Explained>> {
        let Some(next_day) = day.succ_opt() else {
            anyhow::bail!("{day} is the last day the calendar knows");
        };
        let until = timestamp(next_day.and_time(chrono::NaiveTime::MIN).and_utc());
        let rows = sqlx::query(
            "SELECT run_id, as_of, score, band, deployment, engagement, adoption, roi, receipt,
                    config_version
             FROM score_history WHERE account_id = $1 AND as_of < $2 ORDER BY as_of, run_id",
        )
        .bind(account_id)
        .bind(&until)
        .fetch_all(&self.pool)
        .await
        .with_context(|| format!("failed to read the history of account {account_id}"))?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };

        let history: Vec<HistoryRow> = rows
            .iter()
            .map(|h| HistoryRow {
                run_id: h.get("run_id"),
                as_of: h.get("as_of"),
                scored: stored_score(h),
            })
            .collect();
        let before = history.len().checked_sub(2).map(|i| &history[i].scored);
        let scored = stored_score(last);
        let trend = crate::cycle::Trend::between(before, &scored);
        let receipt: String = last.get("receipt");
        Ok(Some(Explained {
            in_force_on: Some(day),
            account_id: account_id.to_owned(),
            run_id: last.get("run_id"),
            as_of: last.get("as_of"),
            scored,
            trend: trend.as_str().to_owned(),
            config_version: last.get("config_version"),
            receipt: serde_json::from_str(&receipt).context("a stored receipt is not JSON")?,
            written_at: None,
            history,
        }))
    }
}

/// The history row that follows `before`, with the day the band turned red carried along as
/// the cycles do: set when it turns red after a score that was not, kept while it stays red.
fn next_in_history(before: Option<Latest>, scored: StoredScore, as_of: String) -> Latest {
    let red = Colour::Red;
    let day = DateTime::parse_from_rfc3339(&as_of)
        .ok()
        .map(|at| at.with_timezone(&Utc).date_naive());
    let red_since = match &before {
        _ if scored.band != red => None,
        Some(previous) if previous.scored.band == red => previous.red_since,
        Some(_) => day,
        None => None,
    };
    Latest {
        scored,
        written: None,
        red_since,
    }
}

/// Takes the lock that serialises opening (creating, migrating) the store at `path` across
/// processes: an advisory lock on a file beside it, released when the returned file is
/// dropped. SQLite itself cannot serialise this: each migration is its own transaction, so
/// two processes that both find the store new would both try to create its tables.
async fn setup_lock(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".setup-lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let shown = lock_path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .context("the task taking the store's setup lock failed")?
    .with_context(|| format!("failed to lock {shown} to open the store"))
}

fn stored_score(row: &sqlx::sqlite::SqliteRow) -> StoredScore {
    StoredScore {
        score: row
            .get::<Option<i64>, _>("score")
            .map(|s| s.clamp(0, 100) as u8),
        band: colour(row, "band"),
        measures: ["deployment", "engagement", "adoption", "roi"].map(|m| colour(row, m)),
    }
}

/// A colour column; anything the store does not know (written by a newer version) reads as
/// N/A rather than failing the whole read.
fn colour(row: &sqlx::sqlite::SqliteRow, column: &str) -> Colour {
    Colour::parse(row.get(column)).unwrap_or(Colour::Na)
}

/// What the latest row stores as its receipt: [`IN_HISTORY`] when the row also joins the
/// history, whose row of the same run then holds the receipt, so that a changed score's receipt
/// (every account's, on a first cycle) is written once instead of twice.
fn latest_receipt(row: &ScoreRow) -> &str {
    if row.changed {
        IN_HISTORY
    } else {
        &row.receipt
    }
}

async fn upsert_latest(
    tx: &mut sqlx::SqliteConnection,
    run_id: &str,
    as_of: &str,
    config_version: &str,
    rows: &[&ScoreRow],
) -> anyhow::Result<()> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO account_scores (account_id, run_id, as_of, score, band, deployment, \
         engagement, adoption, roi, trend, receipt, config_version, red_since, written) ",
    );
    insert.push_values(rows, |mut values, row| {
        let [deployment, engagement, adoption, roi] = row.scored.measures.map(Colour::as_str);
        values
            .push_bind(&row.account_id)
            .push_bind(run_id)
            .push_bind(as_of)
            .push_bind(row.scored.score.map(i64::from))
            .push_bind(row.scored.band.as_str())
            .push_bind(deployment)
            .push_bind(engagement)
            .push_bind(adoption)
            .push_bind(roi)
            .push_bind(&row.trend)
            .push_bind(latest_receipt(row))
            .push_bind(config_version)
            .push_bind(row.red_since.map(|d| d.to_string()))
            .push_bind(&row.written);
    });
    insert.push(
        " ON CONFLICT (account_id) DO UPDATE SET run_id = excluded.run_id, \
         as_of = excluded.as_of, score = excluded.score, band = excluded.band, \
         deployment = excluded.deployment, engagement = excluded.engagement, \
         adoption = excluded.adoption, roi = excluded.roi, trend = excluded.trend, \
         receipt = excluded.receipt, config_version = excluded.config_version, \
         red_since = excluded.red_since, written = excluded.written, \
         written_at = CASE WHEN excluded.written IS NULL THEN NULL \
                      ELSE account_scores.written_at END \
         WHERE excluded.as_of >= account_scores.as_of",
    );
    insert
        .build()
        .execute(&mut *tx)
        .await
        .context("failed to save the latest scores")?;
    Ok(())
}

async fn insert_history(
    tx: &mut sqlx::SqliteConnection,
    run_id: &str,
    as_of: &str,
    config_version: &str,
    rows: &[&ScoreRow],
) -> anyhow::Result<()> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO score_history (account_id, run_id, as_of, score, band, deployment, \
         engagement, adoption, roi, receipt, config_version) ",
    );
    insert.push_values(rows, |mut values, row| {
        let [deployment, engagement, adoption, roi] = row.scored.measures.map(Colour::as_str);
        values
            .push_bind(&row.account_id)
            .push_bind(run_id)
            .push_bind(as_of)
            .push_bind(row.scored.score.map(i64::from))
            .push_bind(row.scored.band.as_str())
            .push_bind(deployment)
            .push_bind(engagement)
            .push_bind(adoption)
            .push_bind(roi)
            .push_bind(&row.receipt)
            .push_bind(config_version);
    });
    insert.push(" ON CONFLICT (account_id, run_id) DO NOTHING");
    insert
        .build()
        .execute(&mut *tx)
        .await
        .context("failed to save the score history")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_reads_back_as_the_score_it_was_made_from() {
        let scores = [
            StoredScore {
                score: Some(83),
                band: Colour::Green,
                measures: [Colour::Green, Colour::Yellow, Colour::Green, Colour::Na],
            },
            StoredScore {
                score: None,
                band: Colour::Na,
                measures: [Colour::Na, Colour::Red, Colour::Na, Colour::Na],
            },
        ];
        for score in scores {
            assert_eq!(
                StoredScore::from_fingerprint(&score.fingerprint()),
                Some(score)
            );
        }
        for broken in [
            "",
            "83|green",
            "101|green|green|green|green|green",
            "83|teal|a|b|c|d",
        ] {
            assert_eq!(StoredScore::from_fingerprint(broken), None, "{broken}");
        }
    }
}
