// Package revocation holds the certificate revocation list: the in-memory
// copy checked on every certificate-authenticated call (reloaded from the
// store, so a revocation made on another node applies within Refresh) and
// CertificateService, which revokes and lists certificates.
package revocation

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/internal/apierr"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/principal"
	"github.com/croupier/croupier/internal/store"
	"github.com/croupier/croupier/internal/streamcut"
	"google.golang.org/grpc/codes"
)

// List is the in-memory copy of the certificate revocation list.
type List struct {
	store *store.Revocations
	log   *slog.Logger

	mu      sync.RWMutex
	serials map[string]bool
	agents  map[string]string // agent name -> serial of the certificate its tunnel uses

	// streams are the open streams Hold tracks (node listeners'
	// ServerOptions, the server's edge), by certificate serial. Lock
	// order: streams' before mu (cutStreams matches with Revoked).
	streams streamcut.Set[string]
}

// Refresh is how often the server reloads the list.
const Refresh = 10 * time.Second

// New returns an empty list backed by st; Load fills it.
func New(st *store.Revocations, log *slog.Logger) *List {
	return &List{store: st, log: log, serials: map[string]bool{}, agents: map[string]string{}}
}

// Load (re)reads the list from the store.
func (r *List) Load(ctx context.Context) error {
	list, err := r.store.List(ctx)
	if err != nil {
		return fmt.Errorf("load revoked certificates: %w", err)
	}
	m := make(map[string]bool, len(list))
	for _, c := range list {
		m[c.Serial] = true
	}
	r.mu.Lock()
	r.serials = m
	r.mu.Unlock()
	r.cutStreams()
	return nil
}

// Revoked reports whether the certificate with serial (certs.Serial) is
// revoked. A nil List holds nothing.
func (r *List) Revoked(serial string) bool {
	if r == nil || serial == "" {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.serials[serial]
}

// Check refuses a principal whose certificate is revoked.
func (r *List) Check(p principal.Principal) error {
	if r.Revoked(p.CertSerial) {
		return apierr.New(codes.Unauthenticated, apierr.CodeCertificateRevoked,
			fmt.Sprintf("the certificate of %s (serial %s) is revoked", p, p.CertSerial), "serial", p.CertSerial)
	}
	return nil
}

// TunnelOpened remembers which certificate an agent's tunnel uses.
func (r *List) TunnelOpened(name, serial string) {
	r.mu.Lock()
	r.agents[name] = serial
	r.mu.Unlock()
}

func (r *List) add(serial string) {
	r.mu.Lock()
	r.serials[serial] = true
	r.mu.Unlock()
	r.cutStreams()
}

// SerialOf is the serial of the certificate agent name's tunnel uses.
func (r *List) SerialOf(name string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.agents[name]
}

// agentsUsing returns the agents whose tunnels use serial.
func (r *List) agentsUsing(serial string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for name, s := range r.agents {
		if s == serial {
			out = append(out, name)
		}
	}
	return out
}

// Service serves CertificateService. The server's edge checks
// certificate:revoke and writes the audit row (the method table).
type Service struct {
	croupierv1.UnimplementedCertificateServiceServer
	list *List
	// Disconnect cuts the tunnel of an agent whose certificate was revoked.
	disconnect func(agent string, reason error)
	// note names what was revoked in the call's audit row.
	note func(ctx context.Context, payload any)
}

// NewService returns CertificateService over list; disconnect cuts an
// agent's tunnel, note sets the payload of the call's audit row.
func NewService(list *List, disconnect func(agent string, reason error), note func(ctx context.Context, payload any)) *Service {
	return &Service{list: list, disconnect: disconnect, note: note}
}

// RevokeCertificate implements CertificateService.RevokeCertificate.
func (c *Service) RevokeCertificate(ctx context.Context, req *croupierv1.RevokeCertificateRequest) (resp *croupierv1.RevokeCertificateResponse, err error) {
	serial, subject := strings.ToLower(strings.TrimSpace(req.GetSerial())), ""
	defer func() { // the edge writes the row (method table); name what was revoked
		c.note(ctx, map[string]string{"serial": serial, "subject": subject, "reason": req.GetReason()})
	}()
	if pemText := req.GetCertificatePem(); pemText != "" {
		block, _ := pem.Decode([]byte(pemText))
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "certificate_pem holds no PEM CERTIFICATE block")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "certificate_pem: "+err.Error())
		}
		serial = certs.Serial(cert)
		if id, err := certs.IdentityFromCert(cert); err == nil {
			subject = id.String()
		}
	}
	n, ok := new(big.Int).SetString(strings.TrimPrefix(serial, "0x"), 16)
	if serial == "" || !ok || n.Sign() <= 0 {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument, "give certificate_pem, or serial as hex digits")
	}
	serial = n.Text(16) // the form certificates are checked in: no leading zeros, lower case
	p := principal.FromContext(ctx)
	rec := store.RevokedCertificate{Serial: serial, Subject: subject, Reason: req.GetReason(), RevokedBy: p.String()}
	if err := c.list.store.Revoke(ctx, rec); err != nil {
		return nil, apierr.Internal(c.list.log, err)
	}
	rv := c.list
	rv.add(serial)
	resp = &croupierv1.RevokeCertificateResponse{Revoked: &croupierv1.RevokedCertificate{Serial: serial, Subject: subject,
		Reason: req.GetReason(), RevokedBy: p.String(), RevokedAtMs: time.Now().UnixMilli()}}
	for _, name := range rv.agentsUsing(serial) {
		c.disconnect(name, fmt.Errorf("certificate %s revoked: %s", serial, req.GetReason()))
		resp.DisconnectedAgents = append(resp.DisconnectedAgents, name)
	}
	c.list.log.Warn("certificate revoked", "serial", serial, "subject", subject, "by", p.String(), "disconnected", resp.DisconnectedAgents)
	return resp, nil
}

// ListRevokedCertificates implements CertificateService.ListRevokedCertificates.
func (c *Service) ListRevokedCertificates(ctx context.Context, _ *croupierv1.ListRevokedCertificatesRequest) (*croupierv1.ListRevokedCertificatesResponse, error) {
	list, err := c.list.store.List(ctx)
	if err != nil {
		return nil, apierr.Internal(c.list.log, err)
	}
	out := &croupierv1.ListRevokedCertificatesResponse{}
	for _, r := range list {
		out.Certificates = append(out.Certificates, &croupierv1.RevokedCertificate{Serial: r.Serial, Subject: r.Subject,
			Reason: r.Reason, RevokedBy: r.RevokedBy, RevokedAtMs: r.RevokedAt.UnixMilli()})
	}
	return out, nil
}
