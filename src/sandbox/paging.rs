//! Query parameters, opaque cursors and the page envelope of every `/v1/` list.
//!
//! A cursor carries the list it belongs to, the number of the page it leads to, the key of the
//! last row served and the filters of the first request, signed with a hash of the sandbox's
//! seed. The listing resumes strictly after that key, so rows written meanwhile are neither
//! skipped nor served twice. When a cursor is given, the filters it carries are used and the
//! ones in the query are ignored; only `limit` may change from page to page. A cursor that was
//! not issued by this sandbox for this list is a 422.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::book::{SortKey, Start};
use super::faults::{Faults, break_row};
use super::problem::Problem;

/// Page size when the client names none.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page the contract allows.
pub const MAX_LIMIT: usize = 1000;

/// The query parameters of one request, in the order sent. Blank values count as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(name, value)| (name.into_owned(), value.trim().to_owned()))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        Self { pairs }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn limit(&self) -> Result<usize, Problem> {
        let Some(raw) = self.get("limit") else {
            return Ok(DEFAULT_LIMIT);
        };
        match raw.parse::<usize>() {
            Ok(limit @ 1..=MAX_LIMIT) => Ok(limit),
            _ => Err(Problem::validation(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, not {raw:?}"
            ))),
        }
    }

    /// An RFC 3339 timestamp (or any shape the contract's clients accept).
    pub fn timestamp(&self, name: &str) -> Result<Option<DateTime<Utc>>, Problem> {
        self.get(name)
            .map(|raw| {
                crate::model::parse_timestamp(raw)
                    .map_err(|why| Problem::validation(format!("{name}: {why}")))
            })
            .transpose()
    }

    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, Problem> {
        self.get(name)
            .map(|raw| {
                NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
                    Problem::validation(format!("{name} must be a YYYY-MM-DD date, not {raw:?}"))
                })
            })
            .transpose()
    }

    /// A comma-separated list, each value checked against `allowed` when that is not empty.
    pub fn list(&self, name: &str, allowed: &[&str]) -> Result<Option<Vec<String>>, Problem> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let values: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect();
        let unknown = values
            .iter()
            .find(|value| !allowed.is_empty() && !allowed.contains(&value.as_str()));
        match unknown {
            Some(value) => Err(Problem::validation(format!(
                "{name}: {value:?} is not one of {allowed:?}"
            ))),
            None => Ok(Some(values)),
        }
    }

    /// The parameters a cursor keeps: everything but the cursor and the page size.
    fn filters(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(name, _)| name != "cursor" && name != "limit")
            .cloned()
            .collect()
    }
}

/// What a cursor remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CursorBody {
    list: String,
    page: u32,
    after: SortKey,
    filters: Vec<(String, String)>,
}

/// Issues and checks cursors.
pub struct Cursors {
    secret: [u8; 32],
}

impl Cursors {
    pub fn new(seed: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"touchpoint sandbox cursor");
        hasher.update(seed.to_be_bytes());
        Self {
            secret: hasher.finalize().into(),
        }
    }

    fn sign(&self, payload: &[u8]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(payload);
        hex::encode(&hasher.finalize()[..8])
    }

    fn issue(&self, body: &CursorBody) -> String {
        let payload = serde_json::to_vec(body).unwrap_or_default();
        format!("{}.{}", hex::encode(&payload), self.sign(&payload))
    }

    fn open(&self, list: &str, cursor: &str) -> Result<CursorBody, Problem> {
        let forged = || Problem::validation("cursor was not issued by this server for this list");
        let (payload, signature) = cursor.split_once('.').ok_or_else(forged)?;
        let payload = hex::decode(payload).map_err(|_| forged())?;
        if self.sign(&payload) != signature {
            return Err(forged());
        }
        let body: CursorBody = serde_json::from_slice(&payload).map_err(|_| forged())?;
        if body.list != list {
            return Err(forged());
        }
        Ok(body)
    }
}

/// One request for a page of a list, with its cursor resolved.
pub struct ListRequest {
    list: &'static str,
    /// The filters in force: the cursor's, or the query's on a first page.
    pub params: Params,
    limit: usize,
    page: u32,
    after: Option<SortKey>,
    incoming: Option<String>,
}

impl ListRequest {
    pub fn new(cursors: &Cursors, list: &'static str, raw: Option<&str>) -> Result<Self, Problem> {
        let query = Params::parse(raw);
        let limit = query.limit()?;
        let Some(cursor) = query.get("cursor") else {
            return Ok(Self {
                list,
                params: query,
                limit,
                page: 1,
                after: None,
                incoming: None,
            });
        };

        let body = cursors.open(list, cursor)?;
        Ok(Self {
            list,
            params: Params {
                pairs: body.filters,
            },
            limit,
            page: body.page,
            after: Some(body.after),
            incoming: Some(cursor.to_owned()),
        })
    }

    /// Where the rows resume, with an optional inclusive time floor.
    pub fn start(&self, not_before: Option<DateTime<Utc>>) -> Start {
        Start {
            after: self.after.clone(),
            not_before,
        }
    }

    /// Takes one page from `rows` (in order, past the cursor and filtered) and wraps it in the
    /// contract's envelope.
    pub fn page(
        &self,
        cursors: &Cursors,
        faults: &Faults,
        mut rows: impl Iterator<Item = (SortKey, Value)>,
    ) -> Value {
        let mut data = Vec::with_capacity(self.limit.min(64));
        let mut last = None;
        for (key, mut row) in rows.by_ref().take(self.limit) {
            if faults.breaks_row(self.list, &key) {
                break_row(&mut row, &key);
            }
            data.push(row);
            last = Some(key);
        }
        let more = rows.next().is_some();

        let next_cursor = match (more, last) {
            _ if faults.repeating_page() == Some(self.page) && self.incoming.is_some() => {
                self.incoming.clone()
            }
            (true, Some(after)) => Some(cursors.issue(&CursorBody {
                list: self.list.to_owned(),
                page: self.page + 1,
                after,
                filters: self.params.filters(),
            })),
            _ => None,
        };
        json!({ "data": data, "next_cursor": next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_one_to_a_thousand_are_refused() {
        assert_eq!(Params::parse(None).limit().ok(), Some(DEFAULT_LIMIT));
        assert_eq!(Params::parse(Some("limit=1000")).limit().ok(), Some(1000));
        for bad in ["limit=1001", "limit=0", "limit=ten"] {
            assert!(Params::parse(Some(bad)).limit().is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let cursors = Cursors::new(42);
        let body = CursorBody {
            list: "accounts".to_owned(),
            page: 2,
            after: SortKey::named("A-000001"),
            filters: vec![("updated_since".to_owned(), "2024-01-01".to_owned())],
        };
        let cursor = cursors.issue(&body);
        assert_eq!(cursors.open("accounts", &cursor), Ok(body));
        assert!(cursors.open("contacts", &cursor).is_err());
        assert!(Cursors::new(7).open("accounts", &cursor).is_err());
        assert!(cursors.open("accounts", "0.0").is_err());
    }
}
