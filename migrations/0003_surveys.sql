-- Surveys: the outbox of every survey email (recorded under its key before it is sent), the
-- addresses that get nothing, and the answers collected through the answer pages.
-- Portable SQL only (TEXT timestamps in RFC 3339 UTC, no AUTOINCREMENT, ON CONFLICT upserts).

-- One row per email: key = survey:wave:account:contact. person_wave makes "one person, one
-- wave" a constraint: nps:<wave>:<address> or goal:<wave>:<account>:<address>.
-- state: planned, deferred, sending, sent, failed_transient, failed_permanent, skipped.
CREATE TABLE survey_outbox (
    key TEXT PRIMARY KEY,
    person_wave TEXT NOT NULL UNIQUE,
    survey TEXT NOT NULL,
    wave TEXT NOT NULL,
    account_id TEXT NOT NULL,
    account_name TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    display_name TEXT,
    zone TEXT NOT NULL,
    due_on TEXT NOT NULL,
    closes_at TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    message_id TEXT,
    run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT
);

CREATE INDEX survey_outbox_by_due ON survey_outbox (due_on);
CREATE INDEX survey_outbox_by_state ON survey_outbox (state);
CREATE INDEX survey_outbox_by_recipient ON survey_outbox (recipient, sent_at);

-- Addresses that get no survey: reason is 'unsubscribed' or 'hard bounce: ...'.
CREATE TABLE survey_suppressions (
    address TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    outbox_key TEXT,
    created_at TEXT NOT NULL
);

-- One answer per email: a second answer to the same email replaces the first. response_id is
-- stable (tp- and a hash of the key), so the CRM copy and the local one are counted once.
CREATE TABLE survey_answers (
    key TEXT PRIMARY KEY REFERENCES survey_outbox (key),
    response_id TEXT NOT NULL UNIQUE,
    survey TEXT NOT NULL,
    account_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    score INTEGER,
    goal_achieved INTEGER,
    goal TEXT,
    comment TEXT,
    submitted_at TEXT NOT NULL,
    pushed_at TEXT,
    push_error TEXT
);

CREATE INDEX survey_answers_by_submitted ON survey_answers (submitted_at);
