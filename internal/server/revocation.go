package server

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
	"google.golang.org/grpc/codes"
)

// revocations is the in-memory copy of the certificate revocation list,
// checked on every certificate-authenticated call. It is reloaded from the
// store periodically, so a revocation made on another node applies here
// within revocationRefresh.
type revocations struct {
	store *store.Store
	log   *slog.Logger

	mu      sync.RWMutex
	serials map[string]bool
	agents  map[string]string // agent name -> serial of the certificate its tunnel uses
}

const revocationRefresh = 10 * time.Second

func newRevocations(st *store.Store, log *slog.Logger) *revocations {
	return &revocations{store: st, log: log, serials: map[string]bool{}, agents: map[string]string{}}
}

func (r *revocations) load(ctx context.Context) error {
	list, err := r.store.Revocations().List(ctx)
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
	return nil
}

func (r *revocations) revoked(serial string) bool {
	if serial == "" {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.serials[serial]
}

// check refuses a principal whose certificate is revoked.
func (r *revocations) check(p principal.Principal) error {
	if r.revoked(p.CertSerial) {
		return apierr.New(codes.Unauthenticated, apierr.CodeCertificateRevoked,
			fmt.Sprintf("the certificate of %s (serial %s) is revoked", p, p.CertSerial), "serial", p.CertSerial)
	}
	return nil
}

// tunnelOpened remembers which certificate an agent's tunnel uses.
func (r *revocations) tunnelOpened(name, serial string) {
	r.mu.Lock()
	r.agents[name] = serial
	r.mu.Unlock()
}

func (r *revocations) add(serial string) {
	r.mu.Lock()
	r.serials[serial] = true
	r.mu.Unlock()
}

// serialOf is the serial of the certificate agent name's tunnel uses.
func (r *revocations) serialOf(name string) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.agents[name]
}

// agentsUsing returns the agents whose tunnels use serial.
func (r *revocations) agentsUsing(serial string) []string {
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

// certService serves CertificateService.
type certService struct {
	croupierv1.UnimplementedCertificateServiceServer
	s *Server
}

func (c certService) RevokeCertificate(ctx context.Context, req *croupierv1.RevokeCertificateRequest) (resp *croupierv1.RevokeCertificateResponse, err error) {
	serial, subject := strings.ToLower(strings.TrimSpace(req.GetSerial())), ""
	defer func() { // the edge writes the row (method table); name what was revoked
		noteOf(ctx).payload = map[string]string{"serial": serial, "subject": subject, "reason": req.GetReason()}
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
		serial = cert.SerialNumber.Text(16)
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
	if err := c.s.store.Revocations().Revoke(ctx, rec); err != nil {
		return nil, apierr.Internal(c.s.log, err)
	}
	rv := c.s.revocations
	rv.add(serial)
	resp = &croupierv1.RevokeCertificateResponse{Revoked: &croupierv1.RevokedCertificate{Serial: serial, Subject: subject,
		Reason: req.GetReason(), RevokedBy: p.String(), RevokedAtMs: time.Now().UnixMilli()}}
	for _, name := range rv.agentsUsing(serial) {
		c.s.tunnel.Disconnect(name, fmt.Errorf("certificate %s revoked: %s", serial, req.GetReason()))
		resp.DisconnectedAgents = append(resp.DisconnectedAgents, name)
	}
	c.s.log.Warn("certificate revoked", "serial", serial, "subject", subject, "by", p.String(), "disconnected", resp.DisconnectedAgents)
	return resp, nil
}

func (c certService) ListRevokedCertificates(ctx context.Context, _ *croupierv1.ListRevokedCertificatesRequest) (*croupierv1.ListRevokedCertificatesResponse, error) {
	list, err := c.s.store.Revocations().List(ctx)
	if err != nil {
		return nil, apierr.Internal(c.s.log, err)
	}
	out := &croupierv1.ListRevokedCertificatesResponse{}
	for _, r := range list {
		out.Certificates = append(out.Certificates, &croupierv1.RevokedCertificate{Serial: r.Serial, Subject: r.Subject,
			Reason: r.Reason, RevokedBy: r.RevokedBy, RevokedAtMs: r.RevokedAt.UnixMilli()})
	}
	return out, nil
}
