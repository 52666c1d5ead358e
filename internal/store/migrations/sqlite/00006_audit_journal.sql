-- How far each server's audit journal has been moved into audit_log. A
-- server appends audit entries to a local journal file first (see
-- internal/audit/journal.go) and moves them into the chain in batches; the
-- batch's rows and its journal's new applied_seq commit in one transaction,
-- so replaying the journal after a crash skips what is already stored.

-- +goose Up
CREATE TABLE audit_journals (
    id          TEXT   NOT NULL PRIMARY KEY,
    applied_seq BIGINT NOT NULL
);

-- +goose Down
DROP TABLE audit_journals;
