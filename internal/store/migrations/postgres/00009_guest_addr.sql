-- Where each guest joined from (docs/rooms.md, "Guests"), postgres dialect: the
-- client's address (an IPv6 address as its /64), so that a guest banned or
-- muted in their room cannot come back at once as a new guest from there.
-- Keep in step with the other dialect's 00009_guest_addr.sql.

-- +goose Up
ALTER TABLE room_users ADD COLUMN guest_addr TEXT NOT NULL DEFAULT '';
CREATE INDEX room_users_guest_addr ON room_users (guest_room_id, guest_addr) WHERE guest;

-- +goose Down
DROP INDEX room_users_guest_addr;
ALTER TABLE room_users DROP COLUMN guest_addr;
