package filter

// Session is the view of a game server session that filters and sorts read.
// The fleet service fills it from its own records; the filter package knows
// nothing about storage or session states.
type Session struct {
	Name string // gameServerSessionName
	ID   string // gameServerSessionId
	// MaxPlayers is what GSE calls maximumSessions: the player capacity.
	MaxPlayers         int
	CreationTimeMillis int64 // Unix milliseconds
	PlayerCount        int   // playerSessionCount: RESERVED + ACTIVE players
	// HasAvailable is hasAvailablePlayerSessions. The caller computes it
	// (session ACTIVE, creation policy ACCEPT_ALL, PlayerCount < MaxPlayers)
	// because only it knows the session state.
	HasAvailable bool
	Properties   map[string]string // gameServerSessionProperties.KEY
}
