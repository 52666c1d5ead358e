package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	croupierv1 "github.com/croupier/croupier/api/croupier/v1"
	"github.com/croupier/croupier/bench/internal/stack"
	"github.com/croupier/croupier/internal/certs"
	"github.com/croupier/croupier/internal/tlsconf"
	"github.com/croupier/croupier/sdk"
	"google.golang.org/protobuf/encoding/protojson"
)

// restBody is the JSON body of both REST calls: what a script would post.
const restBody = `{"game_id":"demo","env":"dev","payload":{"player_id":"p42"}}`

// maxRESTBody bounds what the direct endpoint and the client read.
const maxRESTBody = 1 << 20

// restCallers returns POST /api/v1/functions/player.get:invoke on the
// server's HTTP listener and the same handler served as a plain JSON
// endpoint over HTTPS, both called with the administrator's client
// certificate over one HTTP/2 connection each.
func restCallers(st *stack.Stack, bundle *certs.Bundle, handler sdk.Handler) (viaCroupier, direct caller, stop func(), err error) {
	ctls, err := tlsconf.ClientConfig(bundle.CACert, bundle.ClientCert, bundle.ClientKey, "localhost")
	if err != nil {
		return nil, nil, nil, err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ctls, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 128}}
	directAddr, stopDirect, err := serveDirectREST(bundle, handler)
	if err != nil {
		return nil, nil, nil, err
	}
	viaCroupier = restCaller(client, "https://"+st.Server.HTTPAddr()+"/api/v1/functions/player.get:invoke")
	direct = restCaller(client, "https://"+directAddr+"/invoke")
	return viaCroupier, direct, func() { client.CloseIdleConnections(); stopDirect() }, nil
}

// restCaller posts restBody to url and checks the JSON answer says success.
func restCaller(client *http.Client, url string) caller {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(restBody)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxRESTBody))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d: %.200s", url, resp.StatusCode, b)
		}
		out := &croupierv1.InvokeFunctionResponse{}
		if err := protojson.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decode answer: %w", url, err)
		}
		if !out.GetSuccess() {
			return fmt.Errorf("%s: %s: %s", url, out.GetErrorCode(), out.GetError())
		}
		return nil
	}
}

// serveDirectREST serves handler as POST /invoke, JSON in and out (the
// InvokeFunction request and response shapes), over HTTPS with mTLS.
func serveDirectREST(b *certs.Bundle, handler sdk.Handler) (string, func(), error) {
	stls, err := tlsconf.ServerConfig(b.CACert, b.ServerCert, b.ServerKey, true)
	if err != nil {
		return "", nil, err
	}
	stls = stls.Clone()
	stls.NextProtos = []string{"h2", "http/1.1"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRESTBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		req := &croupierv1.InvokeFunctionRequest{}
		if err := protojson.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := &croupierv1.InvokeFunctionResponse{Success: true}
		res, err := handler(r.Context(), &sdk.Invocation{FunctionID: "player.get", Payload: req.GetPayload()})
		if err != nil {
			resp = &croupierv1.InvokeFunctionResponse{Success: false, Error: err.Error()}
		} else {
			resp.Result = res
		}
		out, err := protojson.Marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(tls.NewListener(l, stls)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("bench: direct REST server:", err)
		}
	}()
	return l.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}
