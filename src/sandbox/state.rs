//! What a running sandbox holds: the book it serves and everything clients changed or caused.
//!
//! The book is read-only once loaded. Writes (health, tasks, pushed survey answers), the
//! faults, the write log and the counters live here behind short-lived locks; no lock is held
//! across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use super::book::{Book, SortKey};
use super::faults::Faults;
use super::paging::Cursors;
use super::tasks::TaskStore;

/// One write the sandbox received on `/v1/`, as `GET /_sandbox/writes` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedWrite {
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// The JSON body; a body that is not JSON is kept as a string, an empty one as null.
    pub body: Value,
    /// The status the sandbox answered with.
    pub status: u16,
}

/// Request counters, as `GET /_sandbox/stats` shows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Requests per endpoint, e.g. `GET /v1/accounts` or `PUT /v1/tasks/{key}`.
    pub requests: BTreeMap<String, u64>,
    /// 429 answers served.
    pub rate_limited: u64,
    /// 5xx answers served.
    pub server_errors: u64,
    /// Rows of a CSV book skipped at load time because they could not be read, per list.
    pub rejected_rows: BTreeMap<String, u64>,
}

/// Survey answers pushed with `PUT /v1/survey-responses/{id}`, served beside the book's own.
#[derive(Default)]
pub struct PushedResponses {
    pub by_key: BTreeMap<SortKey, Value>,
    pub key_of: HashMap<String, SortKey>,
}

pub struct App {
    pub book: Arc<dyn Book>,
    pub token: String,
    pub cursors: Cursors,
    faults: RwLock<Faults>,
    /// Numbers `/v1/` requests for the faults; restarts when the faults are set.
    pub fault_counter: AtomicU64,
    /// Numbers `/v1/` writes for the write faults; restarts when the faults are set.
    pub write_counter: AtomicU64,
    pub writes: Mutex<Vec<RecordedWrite>>,
    /// The latest health item per account id.
    pub health: Mutex<HashMap<String, Value>>,
    pub tasks: Mutex<TaskStore>,
    pub responses: Mutex<PushedResponses>,
    pub stats: Mutex<SandboxStats>,
    closing: watch::Sender<bool>,
}

impl App {
    pub fn new(book: Arc<dyn Book>, token: String, secret: u64, faults: Faults) -> Self {
        Self {
            book,
            token,
            cursors: Cursors::new(secret),
            faults: RwLock::new(faults),
            fault_counter: AtomicU64::new(0),
            write_counter: AtomicU64::new(0),
            writes: Mutex::default(),
            health: Mutex::default(),
            tasks: Mutex::default(),
            responses: Mutex::default(),
            stats: Mutex::default(),
            closing: watch::Sender::new(false),
        }
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the faults and restarts the request and write numberings they count with.
    pub fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
        self.fault_counter
            .store(0, std::sync::atomic::Ordering::SeqCst);
        self.write_counter
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Tells requests that hang on purpose to give up: the server is stopping.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`App::close`] was called.
    pub async fn until_closing(&self) {
        let mut closing = self.closing.subscribe();
        // An error means the sender is gone, which also means the sandbox is stopping.
        let _ = closing.wait_for(|closed| *closed).await;
    }
}

/// Locks a mutex, carrying on after a panic elsewhere: every value kept here stays valid
/// between statements, so a poisoned lock holds nothing half-written.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
