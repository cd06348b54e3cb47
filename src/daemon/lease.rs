//! The scheduler lease: one active scheduler per database.
//!
//! A single row names the instance that may schedule jobs and until when. Taking and renewing
//! it is one conditional upsert: it succeeds when there is no row, when this instance already
//! holds it, or when the holder let it expire; the database serialises the statements, so of
//! two instances racing for a free lease exactly one wins. The holder renews it well before it
//! expires and deletes it on a clean stop, so a standby takes over at its next attempt instead
//! of waiting out the lease.
//!
//! Validity is judged on the wall clock, like the expiry stored in the row, so an instance that
//! was suspended (a laptop lid, a paused container) stops scheduling the moment it wakes
//! after its lease ran out, until a renewal succeeds. Instances sharing a database are assumed
//! to share a clock, which holds for a SQLite file on one host.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use crate::store::Store;

/// The name of the one lease the daemon takes.
const SCHEDULER: &str = "scheduler";

/// How the holder name of a one-shot cycle's lease starts.
pub const ONE_SHOT: &str = "cycle@";

/// Lease times keep milliseconds and a fixed width, so text order is time order in SQL.
fn lease_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// This instance's side of the lease.
#[derive(Debug)]
pub struct Lease {
    holder: String,
    ttl: Duration,
    held_until: Mutex<Option<DateTime<Utc>>>,
}

impl Lease {
    /// A lease handle for this daemon process, identified by host, process id and a random
    /// suffix.
    pub fn new(ttl: Duration) -> Self {
        Self::named("", ttl)
    }

    /// A lease handle for a one-shot `touchpoint cycle`, which holds the lease while it runs
    /// so that a daemon on the same store schedules nothing meanwhile and a second one-shot
    /// cycle refuses to start. Its holder name starts with [`ONE_SHOT`].
    pub fn one_shot(ttl: Duration) -> Self {
        Self::named(ONE_SHOT, ttl)
    }

    fn named(prefix: &str, ttl: Duration) -> Self {
        let host = host_name();
        let suffix: u32 = rand::random();
        Self {
            holder: format!("{prefix}{host}:{}:{suffix:08x}", std::process::id()),
            ttl,
            held_until: Mutex::new(None),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this instance may schedule now.
    pub fn is_held(&self) -> bool {
        self.held_until().is_some_and(|until| Utc::now() < until)
    }

    fn held_until(&self) -> Option<DateTime<Utc>> {
        *self
            .held_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_held_until(&self, until: Option<DateTime<Utc>>) {
        *self
            .held_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = until;
    }

    /// Takes or renews the lease; says whether this instance holds it now. On a store error
    /// the previous expiry stands, so a brief hiccup does not drop a lease still valid.
    pub async fn renew(&self, store: &Store) -> anyhow::Result<bool> {
        let now = Utc::now();
        let ttl = TimeDelta::from_std(self.ttl).unwrap_or(TimeDelta::seconds(30));
        let until = now + ttl;
        let won = store.try_lease(SCHEDULER, &self.holder, now, until).await?;
        self.set_held_until(won.then_some(until));
        Ok(won)
    }

    /// Gives the lease up, so a standby takes over at once.
    pub async fn release(&self, store: &Store) -> anyhow::Result<()> {
        self.set_held_until(None);
        store.release_lease(SCHEDULER, &self.holder).await
    }
}

/// The instance holding the scheduler lease now, if any.
pub async fn active_holder(store: &Store) -> anyhow::Result<Option<String>> {
    let Some((holder, expires_at)) = store.lease_holder(SCHEDULER).await? else {
        return Ok(None);
    };
    let live = DateTime::parse_from_rfc3339(&expires_at).is_ok_and(|at| at > Utc::now());
    Ok(live.then_some(holder))
}

/// The name holders are known by on this host.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// Whether process `pid` still runs: it has an entry in `/proc` and is not a zombie (a
/// killed process stays one until its parent reaps it).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Frees the lease when its holder is a one-shot cycle on this host whose process has ended
/// (stopped with Ctrl-C, say), so the next `touchpoint cycle` need not wait out the lease.
/// True when it freed one. A daemon's lease is left alone: its standby takes over on time.
pub async fn free_if_holder_died(store: &Store) -> anyhow::Result<bool> {
    let Some(holder) = active_holder(store).await? else {
        return Ok(false);
    };
    let Some(rest) = holder.strip_prefix(ONE_SHOT) else {
        return Ok(false);
    };
    let mut parts = rest.rsplitn(3, ':');
    let (_suffix, pid, host) = (parts.next(), parts.next(), parts.next());
    let Some(pid) = pid.and_then(|pid| pid.parse::<u32>().ok()) else {
        return Ok(false);
    };
    let same_host = host == Some(host_name().as_str());
    if !same_host || process_alive(pid) || !std::path::Path::new("/proc/self").exists() {
        return Ok(false);
    }
    store.release_lease(SCHEDULER, &holder).await?;
    Ok(true)
}

impl Store {
    /// Takes the lease `name` for `holder` until `until`, if it is free, expired or already
    /// held by `holder`. True when `holder` holds it afterwards.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let result = sqlx::query(
            "INSERT INTO scheduler_lease (name, holder, acquired_at, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET
                 acquired_at = CASE WHEN scheduler_lease.holder = excluded.holder
                     THEN scheduler_lease.acquired_at ELSE excluded.acquired_at END,
                 holder = excluded.holder,
                 expires_at = excluded.expires_at
             WHERE scheduler_lease.holder = excluded.holder
                OR scheduler_lease.expires_at <= excluded.acquired_at",
        )
        .bind(name)
        .bind(holder)
        .bind(lease_time(now))
        .bind(lease_time(until))
        .execute(self.pool())
        .await
        .with_context(|| format!("failed to take or renew the {name} lease"))?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn release_lease(&self, name: &str, holder: &str) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM scheduler_lease WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await
            .with_context(|| format!("failed to release the {name} lease"))?;
        Ok(())
    }

    /// The current holder of the lease `name` and its expiry, if anyone holds it.
    pub async fn lease_holder(&self, name: &str) -> anyhow::Result<Option<(String, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT holder, expires_at FROM scheduler_lease WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .with_context(|| format!("failed to read the {name} lease"))?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::settings::StoreSettings;

    async fn store(dir: &TempDir) -> Store {
        let settings = StoreSettings {
            path: dir.path().join("lease.db"),
            busy_timeout: Duration::from_secs(5),
        };
        Store::open(&settings).await.expect("the store opens")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + seconds, 0).expect("a time")
    }

    #[tokio::test]
    async fn only_one_holder_at_a_time_and_an_expired_lease_changes_hands() {
        let dir = TempDir::new().expect("a temporary folder");
        let store = store(&dir).await;
        let take = |holder: &'static str, now: i64| {
            let store = store.clone();
            async move { store.try_lease("s", holder, at(now), at(now + 30)).await }
        };

        assert!(take("a", 0).await.expect("a takes it"));
        assert!(!take("b", 10).await.expect("b asks"), "a holds it until 30");
        assert!(take("a", 20).await.expect("a renews"));
        assert!(!take("b", 49).await.expect("b asks"), "renewed until 50");
        assert!(take("b", 50).await.expect("b takes it"), "expired at 50");
        assert!(!take("a", 51).await.expect("a asks"), "b holds it now");

        let (holder, _) = store.lease_holder("s").await.expect("read").expect("held");
        assert_eq!(holder, "b");
    }

    #[tokio::test]
    async fn a_released_lease_is_free_at_once() {
        let dir = TempDir::new().expect("a temporary folder");
        let store = store(&dir).await;
        assert!(
            store
                .try_lease("s", "a", at(0), at(30))
                .await
                .expect("a takes it")
        );

        store
            .release_lease("s", "b")
            .await
            .expect("b cannot release a's lease");
        assert!(
            !store
                .try_lease("s", "b", at(1), at(31))
                .await
                .expect("b asks")
        );
        store.release_lease("s", "a").await.expect("a releases");

        assert!(
            store
                .try_lease("s", "b", at(2), at(32))
                .await
                .expect("b takes it")
        );
    }
}
