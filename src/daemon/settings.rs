//! The `[daemon]` and `[http]` sections: schedules, their time zone, the scheduler lease,
//! shutdown, and the HTTP server's address and readiness bounds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::schedule::Schedule;
use crate::settings::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemonSettings {
    timezone: String,
    shutdown_deadline_secs: u64,
    lease: RawLease,
    jobs: BTreeMap<String, RawJob>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLease {
    ttl_secs: u64,
    renew_every_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    enabled: bool,
    schedule: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpSettings {
    listen: String,
    ready_max_cycle_age_secs: u64,
}

/// The validated `[daemon]` section.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    pub timezone: Tz,
    /// How long a stop waits for the job in flight before the process exits anyway.
    pub shutdown_deadline: Duration,
    /// How long the scheduler lease lasts unless renewed.
    pub lease_ttl: Duration,
    /// How often the lease is renewed (and due runs are checked).
    pub lease_renew_every: Duration,
    /// Schedules by job name (`daemon.jobs.<name>`).
    pub jobs: BTreeMap<String, JobSettings>,
}

/// One job's switch and schedule.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub enabled: bool,
    pub schedule: Schedule,
}

/// The validated `[http]` section.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// `/readyz` turns unready when the last successful cycle is older than this.
    pub ready_max_cycle_age: Duration,
}

impl DaemonSettings {
    pub fn from_raw(raw: RawDaemonSettings) -> Result<Self, ConfigError> {
        let timezone = raw.timezone.parse::<Tz>().map_err(|_| {
            ConfigError::new(
                "daemon.timezone",
                format!("{:?} is not an IANA time zone", raw.timezone),
            )
        })?;
        let jobs = raw
            .jobs
            .into_iter()
            .map(|(name, job)| {
                let key = format!("daemon.jobs.{name}.schedule");
                let schedule = Schedule::parse(&job.schedule, timezone)
                    .map_err(|e| ConfigError::new(&key, e))?;
                if job.enabled && schedule.next_after(Utc::now()).is_none() {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "{:?} never fires (no date matches it, such as 30 February); fix \
                             it, or set daemon.jobs.{name}.enabled = false",
                            schedule.expression()
                        ),
                    ));
                }
                let settings = JobSettings {
                    enabled: job.enabled,
                    schedule,
                };
                Ok((name, settings))
            })
            .collect::<Result<_, ConfigError>>()?;
        let (ttl, renew) = (raw.lease.ttl_secs, raw.lease.renew_every_secs);
        if ttl < 2 {
            return Err(ConfigError::new(
                "daemon.lease.ttl_secs",
                format!("{ttl} must be at least 2, so the lease can be renewed before it lapses"),
            ));
        }
        if renew == 0 || renew.saturating_mul(2) > ttl {
            return Err(ConfigError::new(
                "daemon.lease.renew_every_secs",
                format!(
                    "{renew} must be at least 1 and at most half of daemon.lease.ttl_secs \
                     ({ttl}), so one late renewal does not lose the lease"
                ),
            ));
        }
        if raw.shutdown_deadline_secs == 0 {
            return Err(ConfigError::new(
                "daemon.shutdown_deadline_secs",
                "must be at least 1",
            ));
        }
        Ok(Self {
            timezone,
            shutdown_deadline: Duration::from_secs(raw.shutdown_deadline_secs),
            lease_ttl: Duration::from_secs(ttl),
            lease_renew_every: Duration::from_secs(renew),
            jobs,
        })
    }
}

impl DaemonSettings {
    /// The schedules' zone's offset from UTC at `at`, in seconds.
    pub fn timezone_offset(&self, at: DateTime<Utc>) -> i32 {
        self.timezone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc()
    }
}

impl HttpSettings {
    pub fn from_raw(raw: RawHttpSettings) -> Result<Self, ConfigError> {
        let listen = raw.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "http.listen",
                format!(
                    "{:?} is not an address and port such as \"127.0.0.1:8080\"",
                    raw.listen
                ),
            )
        })?;
        if raw.ready_max_cycle_age_secs == 0 {
            return Err(ConfigError::new(
                "http.ready_max_cycle_age_secs",
                "must be at least 1",
            ));
        }
        Ok(Self {
            listen,
            ready_max_cycle_age: Duration::from_secs(raw.ready_max_cycle_age_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_utc_offset_follows_the_zone() {
        let settings = DaemonSettings {
            timezone: chrono_tz::Europe::Berlin,
            shutdown_deadline: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(2),
            lease_renew_every: Duration::from_secs(1),
            jobs: BTreeMap::new(),
        };
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("a test time")
                .with_timezone(&Utc)
        };
        assert_eq!(settings.timezone_offset(at("2025-03-30T00:59:59Z")), 3600);
        assert_eq!(settings.timezone_offset(at("2025-03-30T01:00:00Z")), 7200);
    }
}
