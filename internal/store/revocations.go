package store

import (
	"context"
	"time"
)

// RevokedCertificate is one entry of the certificate revocation list.
type RevokedCertificate struct {
	Serial    string // hex, lower case
	Subject   string // the certificate's identity, e.g. croupier://agent/a1?game=g&env=e
	Reason    string
	RevokedBy string
	RevokedAt time.Time
}

// Revocations stores revoked certificates.
type Revocations struct{ s *Store }

// Revocations returns the revocation list store.
func (s *Store) Revocations() *Revocations { return &Revocations{s: s} }

// Revoke adds a certificate; revoking it again keeps the first entry.
func (x *Revocations) Revoke(ctx context.Context, r RevokedCertificate) error {
	if r.Serial == "" {
		return invalid("revoke: serial must not be empty")
	}
	_, err := x.s.db.ExecContext(ctx,
		`INSERT INTO revoked_certificates (serial, subject, reason, revoked_by, revoked_at) VALUES ($1, $2, $3, $4, $5)
		 ON CONFLICT (serial) DO NOTHING`,
		r.Serial, r.Subject, r.Reason, r.RevokedBy, x.s.nowMs())
	return dbErr(ctx, "revoke certificate", err)
}

// List returns every revoked certificate, oldest first.
func (x *Revocations) List(ctx context.Context) ([]RevokedCertificate, error) {
	rows, err := x.s.db.QueryContext(ctx,
		`SELECT serial, subject, reason, revoked_by, revoked_at FROM revoked_certificates ORDER BY revoked_at, serial`)
	if err != nil {
		return nil, dbErr(ctx, "list revoked certificates", err)
	}
	defer rows.Close()
	var out []RevokedCertificate
	for rows.Next() {
		var r RevokedCertificate
		var at int64
		if err := rows.Scan(&r.Serial, &r.Subject, &r.Reason, &r.RevokedBy, &at); err != nil {
			return nil, dbErr(ctx, "list revoked certificates", err)
		}
		r.RevokedAt = msToTime(at)
		out = append(out, r)
	}
	return out, dbErr(ctx, "list revoked certificates", rows.Err())
}
