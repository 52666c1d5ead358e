package fleet

import (
	"time"
	"unicode/utf8"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
)

// Limits on API input; GSE's where it documents one.
const (
	MaxGameProperties     = 16
	MaxPropertyKeyBytes   = 32
	MaxPropertyValueBytes = 96
	MaxSessionDataBytes   = 4096
	MaxPlayerDataBytes    = 2048
	MaxNameBytes          = 1024
	MaxIDBytes            = 48
	MaxMaxPlayers         = 10000
	MaxBatchJoin          = 25
	MaxPageSize           = 100
	DefaultPageSize       = 50
	MaxServerProcesses    = 50
	// A launch configuration's argv and environment.
	MaxParameters          = 64
	MaxParameterBytes      = 1024
	MaxEnvironment         = 64
	MaxEnvironmentBytes    = 4096
	MaxActivationTimeout   = 600 * time.Second
	MaxReservationTimeout  = time.Hour
	MaxPlacementTimeout    = time.Hour
	MaxProtectionTimeLimit = 1440 // minutes
)

// Protection policies (GSE's names).
const (
	NoProtection        = "NoProtection"
	TimeLimitProtection = "TimeLimitProtection"
	FullProtection      = "FullProtection"
)

// validID accepts 1..max letters, digits, '-', '_' and '.'.
func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func checkText(field, v string, max int) error {
	if len(v) > max {
		return invalidArg("%s is %d bytes; the limit is %d", field, len(v), max)
	}
	if !utf8.ValidString(v) {
		return invalidArg("%s is not valid UTF-8", field)
	}
	return nil
}

func checkProperties(props []*croupierv1.GameProperty) error {
	if len(props) > MaxGameProperties {
		return invalidArg("game_properties has %d entries; at most %d are allowed", len(props), MaxGameProperties)
	}
	seen := map[string]bool{}
	for i, p := range props {
		if p.GetKey() == "" {
			return invalidArg("game_properties[%d] has an empty key", i)
		}
		if err := checkText("game_properties key "+p.GetKey(), p.GetKey(), MaxPropertyKeyBytes); err != nil {
			return err
		}
		if err := checkText("game_properties value of "+p.GetKey(), p.GetValue(), MaxPropertyValueBytes); err != nil {
			return err
		}
		if seen[p.GetKey()] {
			return invalidArg("game property %q is given twice", p.GetKey())
		}
		seen[p.GetKey()] = true
	}
	return nil
}

func checkMaxPlayers(n int32) error {
	if n < 0 || n > MaxMaxPlayers {
		return invalidArg("max_players %d is out of range 0..%d", n, MaxMaxPlayers)
	}
	return nil
}

// pageSize applies the default and checks the range of a limit field.
func pageSize(limit int32) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, invalidArg("limit %d is out of range 1..%d", limit, MaxPageSize)
	}
	return int(limit), nil
}
