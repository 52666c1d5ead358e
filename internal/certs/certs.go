// Package certs creates and reads the X.509 material that Croupier's mutual
// TLS runs on: a development CA, server certificates, agent certificates that
// carry the agent's identity and game/env scope, and operator client
// certificates.
//
// Identity lives in a URI SAN (croupier://<kind>/<name>?game=..&env=..)
// rather than in the subject: URI SANs are structured, covered by the
// signature like every other extension, and cannot be confused with a DNS
// name or a free-form CommonName.
package certs

import "fmt"

// Kind says which role a certificate plays.
type Kind string

// The certificate kinds Croupier issues.
const (
	// KindServer is a croupier server: TLS server authentication.
	KindServer Kind = "server"
	// KindAgent is a croupier agent: TLS client authentication, scoped to
	// one game and environment.
	KindAgent Kind = "agent"
	// KindClient is an operator tool (CLI, scripts): TLS client
	// authentication.
	KindClient Kind = "client"
	// KindBusiness is a business process of the player gateway: TLS client
	// authentication to the gateway's business listener only (the server
	// refuses it on its APIs).
	KindBusiness Kind = "business"
)

// ParseKind accepts the textual kind used on the command line.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindServer, KindAgent, KindClient, KindBusiness:
		return k, nil
	}
	return "", fmt.Errorf("unknown certificate kind %q: want server, agent, client or business", s)
}

// File names inside a certificate directory, as written by Init.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	AgentCertFile  = "agent.crt"
	AgentKeyFile   = "agent.key"
	ClientCertFile = "client.crt"
	ClientKeyFile  = "client.key"
)

// Identities given to the development certificates when InitOptions leaves
// them empty. The dev command's demo agent uses the same scope.
const (
	DevAgentName  = "dev-agent"
	DevGame       = "demo"
	DevEnv        = "dev"
	DevClientName = "operator"
	DevServerName = "croupier-server"
)

// maxNameLen bounds agent ids, client names, games and envs.
const maxNameLen = 128

// validName restricts names to a small alphabet. They end up in URI paths,
// query strings, CommonNames, file names and log lines; letters, digits,
// '.', '_' and '-' keep all of those unambiguous without escaping.
// CheckName checks a certificate name (the identity's name: an agent id,
// an operator name) as issuing does.
func CheckName(v string) error { return validName("name", v) }

func validName(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required", field)
	}
	ok := len(v) <= maxNameLen && isAlnum(v[0])
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%s %q is invalid: use 1-%d letters, digits, '.', '_' or '-', starting with a letter or digit", field, v, maxNameLen)
	}
	return nil
}

func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}
