-- Operator user names are unique regardless of case (postgres dialect), so that
-- "Admin" cannot pass for "admin" in lists and audit rows, even when two
-- creates race (users.Create also checks first, for its message). A table
-- that already holds such a pair fails this migration on the index: rename
-- or delete one of the two users with the previous version, then upgrade.
-- Keep in step with the other dialect's 00010_username_case.sql.

-- +goose Up
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- +goose Down
DROP INDEX users_username_lower;
