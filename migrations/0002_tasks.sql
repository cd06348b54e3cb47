-- Follow-up tasks: the ledger of every task touchpoint decided to open, the answers already
-- considered, and named flags (the mass-change breaker, the reconciliation watermark).

CREATE TABLE tasks (
    key TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    priority TEXT NOT NULL,
    due_date TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    run_id TEXT,
    crm_id TEXT,
    created_at TEXT NOT NULL,
    opened_at TEXT,
    closed_at TEXT,
    updated_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX tasks_by_account_reason ON tasks (account_id, reason);
CREATE INDEX tasks_by_status ON tasks (status);

CREATE TABLE task_triggers (
    trigger_id TEXT PRIMARY KEY,
    outcome TEXT NOT NULL,
    task_key TEXT,
    decided_at TEXT NOT NULL
);

CREATE TABLE flags (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    set_at TEXT NOT NULL
);

-- The day an account's band turned red (after an earlier score that was not red); empty while
-- it is not red, or when its first score was already red.
ALTER TABLE account_scores ADD COLUMN red_since TEXT;
