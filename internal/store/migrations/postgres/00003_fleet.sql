-- Fleet plane, PostgreSQL dialect. Keep in step with ../sqlite/00003_fleet.sql:
-- same tables, columns and indexes; only types and table options differ.
-- Timestamps are unix milliseconds; 0 means "not set". Statuses are GSE's
-- strings (docs/fleet.md).

-- +goose Up
CREATE TABLE fleets (
    fleet_id   TEXT    NOT NULL PRIMARY KEY,
    game_id    TEXT    NOT NULL,
    env        TEXT    NOT NULL,
    -- croupier.v1.Fleet, protobuf binary encoding: the whole definition, so
    -- fields added to the message later survive older schemas.
    spec       BYTEA    NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (game_id, env) REFERENCES scopes (game_id, env) ON DELETE CASCADE
);
CREATE INDEX fleets_scope ON fleets (game_id, env, fleet_id);

-- Processes as agents report them. game_server_session_id is written only by
-- the server (placement and session end), never by reports.
CREATE TABLE processes (
    process_id             TEXT    NOT NULL PRIMARY KEY,
    agent_id               TEXT    NOT NULL,
    fleet_id               TEXT    NOT NULL,
    game_id                TEXT    NOT NULL,
    env                    TEXT    NOT NULL,
    pid                    BIGINT NOT NULL,
    status                 TEXT    NOT NULL CHECK (status IN ('LAUNCHING', 'ACTIVE', 'TERMINATING', 'TERMINATED', 'CRASHED')),
    healthy                BOOLEAN NOT NULL,
    ip_address             TEXT    NOT NULL DEFAULT '',
    dns_name               TEXT    NOT NULL DEFAULT '',
    client_port            BIGINT NOT NULL DEFAULT 0,
    grpc_port              BIGINT NOT NULL DEFAULT 0,
    -- JSON array of strings.
    log_paths              TEXT    NOT NULL DEFAULT '[]',
    game_server_session_id TEXT    NOT NULL DEFAULT '',
    current_custom_count   BIGINT NOT NULL DEFAULT 0,
    max_custom_count       BIGINT NOT NULL DEFAULT 0,
    launch_path            TEXT    NOT NULL DEFAULT '',
    status_reason          TEXT    NOT NULL DEFAULT '',
    started_at             BIGINT NOT NULL DEFAULT 0,
    ready_at               BIGINT NOT NULL DEFAULT 0,
    ended_at               BIGINT NOT NULL DEFAULT 0,
    updated_at             BIGINT NOT NULL
);
-- Placement looks for a free process of a fleet.
CREATE INDEX processes_fleet_free ON processes (fleet_id, status, game_server_session_id, ready_at);
CREATE INDEX processes_agent ON processes (agent_id, process_id);

CREATE TABLE game_server_sessions (
    game_server_session_id         TEXT    NOT NULL PRIMARY KEY,
    fleet_id                       TEXT    NOT NULL,
    game_id                        TEXT    NOT NULL,
    env                            TEXT    NOT NULL,
    name                           TEXT    NOT NULL DEFAULT '',
    creator_id                     TEXT    NOT NULL DEFAULT '',
    status                         TEXT    NOT NULL CHECK (status IN ('ACTIVATING', 'ACTIVE', 'TERMINATING', 'TERMINATED', 'ERROR')),
    status_reason                  TEXT    NOT NULL DEFAULT '',
    max_players                    BIGINT NOT NULL,
    -- RESERVED + ACTIVE player sessions, maintained with every change of them.
    player_count                   BIGINT NOT NULL DEFAULT 0,
    player_session_creation_policy TEXT    NOT NULL CHECK (player_session_creation_policy IN ('ACCEPT_ALL', 'DENY_ALL')),
    -- JSON array of {"k":..., "v":...}, in the order given.
    game_properties                TEXT    NOT NULL DEFAULT '[]',
    session_data                   TEXT    NOT NULL DEFAULT '',
    matchmaker_data                TEXT    NOT NULL DEFAULT '',
    idempotency_token              TEXT    NOT NULL DEFAULT '',
    agent_id                       TEXT    NOT NULL DEFAULT '',
    process_id                     TEXT    NOT NULL DEFAULT '',
    ip_address                     TEXT    NOT NULL DEFAULT '',
    dns_name                       TEXT    NOT NULL DEFAULT '',
    port                           BIGINT NOT NULL DEFAULT 0,
    current_custom_count           BIGINT NOT NULL DEFAULT 0,
    max_custom_count               BIGINT NOT NULL DEFAULT 0,
    created_at                     BIGINT NOT NULL,
    activation_deadline            BIGINT NOT NULL DEFAULT 0,
    activated_at                   BIGINT NOT NULL DEFAULT 0,
    terminated_at                  BIGINT NOT NULL DEFAULT 0,
    updated_at                     BIGINT NOT NULL,
    FOREIGN KEY (fleet_id) REFERENCES fleets (fleet_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX game_server_sessions_idempotency ON game_server_sessions (fleet_id, idempotency_token)
    WHERE idempotency_token <> '';
CREATE INDEX game_server_sessions_fleet ON game_server_sessions (fleet_id, created_at, game_server_session_id);
CREATE INDEX game_server_sessions_status ON game_server_sessions (status, activation_deadline);
CREATE INDEX game_server_sessions_process ON game_server_sessions (process_id, status);

CREATE TABLE player_sessions (
    player_session_id      TEXT    NOT NULL PRIMARY KEY,
    game_server_session_id TEXT    NOT NULL,
    fleet_id               TEXT    NOT NULL,
    game_id                TEXT    NOT NULL,
    env                    TEXT    NOT NULL,
    player_id              TEXT    NOT NULL,
    player_data            TEXT    NOT NULL DEFAULT '',
    status                 TEXT    NOT NULL CHECK (status IN ('RESERVED', 'ACTIVE', 'COMPLETED', 'TIMEDOUT')),
    ip_address             TEXT    NOT NULL DEFAULT '',
    dns_name               TEXT    NOT NULL DEFAULT '',
    port                   BIGINT NOT NULL DEFAULT 0,
    created_at             BIGINT NOT NULL,
    reserved_until         BIGINT NOT NULL DEFAULT 0,
    terminated_at          BIGINT NOT NULL DEFAULT 0,
    updated_at             BIGINT NOT NULL,
    FOREIGN KEY (game_server_session_id) REFERENCES game_server_sessions (game_server_session_id) ON DELETE CASCADE
);
-- A player holds at most one live seat per game server session.
CREATE UNIQUE INDEX player_sessions_live_player ON player_sessions (game_server_session_id, player_id)
    WHERE status IN ('RESERVED', 'ACTIVE');
CREATE INDEX player_sessions_gss ON player_sessions (game_server_session_id, created_at, player_session_id);
CREATE INDEX player_sessions_player ON player_sessions (player_id, created_at, player_session_id);
CREATE INDEX player_sessions_reserved ON player_sessions (status, reserved_until);

CREATE TABLE game_server_session_placements (
    placement_id           TEXT    NOT NULL PRIMARY KEY,
    fleet_id               TEXT    NOT NULL,
    game_id                TEXT    NOT NULL,
    env                    TEXT    NOT NULL,
    status                 TEXT    NOT NULL CHECK (status IN ('PENDING', 'FULFILLED', 'CANCELLED', 'TIMED_OUT')),
    name                   TEXT    NOT NULL DEFAULT '',
    max_players            BIGINT NOT NULL,
    game_properties        TEXT    NOT NULL DEFAULT '[]',
    session_data           TEXT    NOT NULL DEFAULT '',
    game_server_session_id TEXT    NOT NULL DEFAULT '',
    timeout_seconds        BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    deadline               BIGINT NOT NULL,
    ended_at               BIGINT NOT NULL DEFAULT 0,
    updated_at             BIGINT NOT NULL,
    FOREIGN KEY (fleet_id) REFERENCES fleets (fleet_id) ON DELETE CASCADE
);
-- The queue: pending placements of a fleet in arrival order.
CREATE INDEX placements_queue ON game_server_session_placements (status, fleet_id, created_at, placement_id);

-- +goose Down
DROP TABLE game_server_session_placements;
DROP TABLE player_sessions;
DROP TABLE game_server_sessions;
DROP TABLE processes;
DROP TABLE fleets;
