package agent

// The SDK port trusts whoever connects: a game server registers instances,
// receives the invocations of its functions (their payloads) and answers
// them. Loopback keeps other hosts out, not other users of this host, so
// the port admits only processes of the agent's own user, of root, and of
// the users sdk_allow_uids names (game servers in another container of the
// same network namespace, under another uid). The uid comes from the
// kernel (localpeer: sock_diag, else /proc/net/tcp); where /proc/net/tcp
// cannot be read the agent does not start (Start).
