-- What a job's stored events weigh (docs/jobs.md, "Event budget per job"),
-- sqlite dialect: each event counts its message and data bytes plus 128 for
-- its row (store.EventCost). A non-terminal event that does not fit in the
-- job's budget (jobs.Config.MaxEventBytes, job_max_event_bytes) is
-- acknowledged but not stored. Keep in step with the other dialect's
-- 00011_job_event_bytes.sql.

-- +goose Up
ALTER TABLE jobs ADD COLUMN event_bytes BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE jobs DROP COLUMN event_bytes;
