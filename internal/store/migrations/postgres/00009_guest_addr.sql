-- Where each guest joined from (docs/rooms.md, "Nor does coming back as a
-- new guest"), postgres dialect: the client's address (an IPv6 address as its
-- /64), and whether an admin took permissions away from a guest member, so
-- that a guest banned or muted in their room cannot come back at once as a
-- new guest from there. Keep in step with the other dialect's
-- 00009_guest_addr.sql.

-- +goose Up
ALTER TABLE room_users ADD COLUMN guest_addr TEXT NOT NULL DEFAULT '';
CREATE INDEX room_users_guest_addr ON room_users (guest_room_id, guest_addr) WHERE guest;
ALTER TABLE room_members ADD COLUMN restricted BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE room_members DROP COLUMN restricted;
DROP INDEX room_users_guest_addr;
ALTER TABLE room_users DROP COLUMN guest_addr;
