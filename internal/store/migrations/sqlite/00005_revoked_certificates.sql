-- Revoked client and agent certificates, by serial number (hex). The server
-- refuses them and cuts the tunnels of agents that use them.

-- +goose Up
CREATE TABLE revoked_certificates (
    serial     TEXT   NOT NULL PRIMARY KEY,
    subject    TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    revoked_by TEXT   NOT NULL,
    revoked_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE revoked_certificates;
