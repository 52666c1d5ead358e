// Package rooms is SyncTV's ClientService (../shared/seeds/synctv-api.md
// §9.1, docs/rooms.md): player accounts, rooms with members, roles and
// permission bitmasks, an approval queue and bans, a playlist, one
// server-authoritative playback state per room, and the live MessageStream
// with chat and danmaku.
//
// Layers: internal/rooms/roomsrpc decodes requests (connect-go for gRPC,
// gRPC-Web and Connect; a WebSocket fallback), authenticates the bearer
// token with Service.Authenticate and calls the Service; the Service holds
// the rules and speaks the API's own message types (the seed's protos are
// the contract, so converting them twice would add nothing); SQL lives in
// internal/store (Rooms). Errors are gRPC statuses with an ErrorInfo from the
// catalog in internal/apierr; roomsrpc maps them to connect errors in one
// place.
//
// Live rooms: the hub keeps, for every room with a stream open or an
// operation in flight, the room's event sequence, its playback state, the
// retained chat (the last 500 messages, also in the database) and its
// streams. Every event (room_state, chat, danmaku, member, playlist, room)
// gets the next per-room seq under the room's lock and is queued to every
// stream of the room in that order, so all members see one order. Seqs are
// reserved from the database in blocks, so they keep growing across
// restarts. With a Bus (a cluster of gateway nodes, docs/cluster.md) the
// seq is the event's position in the cluster's log instead, and events are
// delivered from the log (Service.Deliver) on every node.
//
// Lock order: hub.mu before nothing (it is never held while taking a room's
// lock); liveRoom.mu may call into the store (seq blocks, playback writes)
// but never takes hub.mu. A Stream's queue is written under its room's lock
// with non-blocking sends: a stream whose queue is full is cut off
// (SLOW_CONSUMER), never waited for.
package rooms
