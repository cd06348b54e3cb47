-- touchpoint's store: runs, the latest score of every account, and the history of changes.
-- Portable SQL only (TEXT timestamps in RFC 3339 UTC, no AUTOINCREMENT, ON CONFLICT upserts)
-- so that a PostgreSQL backend can run the same statements.

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    as_of TEXT NOT NULL,
    status TEXT NOT NULL,
    config_version TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    accounts_pulled INTEGER,
    summary TEXT
);

CREATE INDEX runs_by_start ON runs (started_at);

CREATE TABLE run_rejections (
    run_id TEXT NOT NULL REFERENCES runs (id),
    seq INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    record_id TEXT,
    account_id TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE config_versions (
    version TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    first_seen TEXT NOT NULL
);

-- One row per account: its latest score and receipt, and what the CRM last accepted.
CREATE TABLE account_scores (
    account_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    as_of TEXT NOT NULL,
    score INTEGER,
    band TEXT NOT NULL,
    deployment TEXT NOT NULL,
    engagement TEXT NOT NULL,
    adoption TEXT NOT NULL,
    roi TEXT NOT NULL,
    trend TEXT NOT NULL,
    receipt TEXT NOT NULL,
    config_version TEXT NOT NULL,
    written TEXT,
    written_at TEXT
);

-- A row each time an account's score, band or a measure changes (the first score included),
-- so the history stays small however often cycles run.
CREATE TABLE score_history (
    account_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    as_of TEXT NOT NULL,
    score INTEGER,
    band TEXT NOT NULL,
    deployment TEXT NOT NULL,
    engagement TEXT NOT NULL,
    adoption TEXT NOT NULL,
    roi TEXT NOT NULL,
    receipt TEXT NOT NULL,
    config_version TEXT NOT NULL,
    PRIMARY KEY (account_id, run_id)
);
