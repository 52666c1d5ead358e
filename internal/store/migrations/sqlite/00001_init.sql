-- Croupier schema, SQLite dialect. Keep in step with ../postgres/00001_init.sql:
-- same tables, columns and indexes; only types and table options differ
-- (INTEGER/BIGINT, BLOB/BYTEA, REAL/DOUBLE PRECISION, WITHOUT ROWID).
-- Timestamps are unix milliseconds; 0 means "not set".

-- +goose Up
CREATE TABLE scopes (
    game_id             TEXT    NOT NULL,
    env                 TEXT    NOT NULL,
    -- Bumped by every assignment change in the scope; agents compare it.
    assignments_version INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (game_id, env)
) WITHOUT ROWID;

CREATE TABLE functions (
    game_id     TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    function_id TEXT    NOT NULL,
    -- croupier.v1.FunctionDescriptor, protobuf binary encoding.
    descriptor  BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (game_id, env, function_id),
    FOREIGN KEY (game_id, env) REFERENCES scopes (game_id, env) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE assignments (
    game_id     TEXT    NOT NULL,
    env         TEXT    NOT NULL,
    function_id TEXT    NOT NULL,
    enabled     BOOLEAN NOT NULL,
    -- JSON object of string values.
    config      TEXT    NOT NULL,
    -- The scope's assignments_version written by the last change of this row.
    version     INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (game_id, env, function_id),
    FOREIGN KEY (game_id, env) REFERENCES scopes (game_id, env) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    scope_key    TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    response     BLOB,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (scope_key, idem_key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

CREATE TABLE jobs (
    job_id          TEXT    NOT NULL PRIMARY KEY,
    game_id         TEXT    NOT NULL,
    env             TEXT    NOT NULL,
    function_id     TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    instance        TEXT    NOT NULL DEFAULT '',
    payload         BLOB,
    actor           TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    started_at      INTEGER NOT NULL DEFAULT 0,
    ended_at        INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    progress        REAL    NOT NULL DEFAULT 0,
    result          BLOB,
    error_message   TEXT    NOT NULL DEFAULT '',
    error_code      TEXT    NOT NULL DEFAULT '',
    -- Highest event seq appended, maintained by AppendEvents.
    last_seq        INTEGER NOT NULL DEFAULT 0
);
-- ListJobs pages newest first, usually within one scope.
CREATE INDEX jobs_scope_created ON jobs (game_id, env, created_at, job_id);
CREATE INDEX jobs_created ON jobs (created_at, job_id);
-- Prune walks finished jobs by end time.
CREATE INDEX jobs_status_ended ON jobs (status, ended_at, job_id);

CREATE TABLE job_events (
    job_id     TEXT    NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    event_type INTEGER NOT NULL,
    message    TEXT    NOT NULL,
    progress   REAL    NOT NULL,
    ts_ms      INTEGER NOT NULL,
    -- JSON document, stored as given.
    data       BLOB,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE job_events;
DROP TABLE jobs;
DROP TABLE idempotency_keys;
DROP TABLE assignments;
DROP TABLE functions;
DROP TABLE scopes;
