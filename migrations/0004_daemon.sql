-- The daemon: one active scheduler per database, and what each scheduled job last covered.

-- The scheduler lease: the instance named in `holder` may schedule until `expires_at`
-- (RFC 3339 UTC with milliseconds, so text order is time order). It is taken and renewed with
-- one conditional upsert, so two instances racing for it cannot both win.
CREATE TABLE scheduler_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- One row per scheduled job. `last_due` is the latest fire time the job has covered: the fire
-- time of its last finished run, or the moment the daemon first met the job. A schedule whose
-- previous fire time is later than `last_due` was missed (the daemon was down or the host
-- asleep) and is caught up once.
CREATE TABLE job_state (
    job TEXT PRIMARY KEY,
    last_due TEXT NOT NULL,
    last_run_id TEXT,
    last_status TEXT,
    last_started_at TEXT,
    last_finished_at TEXT,
    last_duration_ms INTEGER,
    updated_at TEXT NOT NULL
);
