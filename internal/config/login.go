package config

import (
	"fmt"
	"time"

	"github.com/croupier/croupier/internal/ratelimit"
)

// Login is a login throttle's settings (docs/access.md, "Login
// throttling"): the server's, for operators, and the gateway's, for player
// accounts. Both embed it, so its keys are top-level: failed logins in a
// row a username (login_user_free) or a source address (login_source_free)
// may have before further attempts wait; the first wait (login_base_wait),
// doubling with each failure up to login_max_wait; and how long after its
// last failure a key starts over (login_forget).
type Login struct {
	LoginUserFree   int           `koanf:"login_user_free"`
	LoginSourceFree int           `koanf:"login_source_free"`
	LoginBaseWait   time.Duration `koanf:"login_base_wait"`
	LoginMaxWait    time.Duration `koanf:"login_max_wait"`
	LoginForget     time.Duration `koanf:"login_forget"`
}

// DefaultLogin returns the login throttle's defaults.
func DefaultLogin() Login {
	return Login{LoginUserFree: 5, LoginSourceFree: 20, LoginBaseWait: time.Second, LoginMaxWait: 15 * time.Minute, LoginForget: time.Hour}
}

// Problems checks the settings.
func (l Login) Problems() []string {
	var p []string
	if l.LoginUserFree < 1 || l.LoginSourceFree < 1 {
		p = append(p, fmt.Sprintf("login_user_free (%d) and login_source_free (%d) must be at least 1", l.LoginUserFree, l.LoginSourceFree))
	}
	if l.LoginBaseWait < 10*time.Millisecond || l.LoginMaxWait < l.LoginBaseWait || l.LoginForget < l.LoginMaxWait {
		p = append(p, fmt.Sprintf("login waits must satisfy 10ms <= login_base_wait (%s) <= login_max_wait (%s) <= login_forget (%s)",
			l.LoginBaseWait, l.LoginMaxWait, l.LoginForget))
	}
	return p
}

// Throttle is the throttle these settings describe.
func (l Login) Throttle() ratelimit.LoginConfig {
	return ratelimit.LoginConfig{UserFree: l.LoginUserFree, SourceFree: l.LoginSourceFree,
		Base: l.LoginBaseWait, Max: l.LoginMaxWait, Forget: l.LoginForget}
}
