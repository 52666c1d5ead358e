-- Which process incarnation of the instance runs a job: a game server that
-- restarts under the same instance id is a new incarnation, and the jobs the
-- old one ran have failed.

-- +goose Up
ALTER TABLE jobs ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE jobs DROP COLUMN incarnation;
