package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/croupier/croupier/internal/tlsconf"
)

// restClient calls the server's REST API over HTTPS with the operator
// client certificate (or none).
func restClient(t *testing.T, certDir string, withCert bool) *http.Client {
	t.Helper()
	cert, key := filepath.Join(certDir, "client.crt"), filepath.Join(certDir, "client.key")
	if !withCert {
		cert, key = "", ""
	}
	cfg, err := tlsconf.ClientConfig(filepath.Join(certDir, "ca.crt"), cert, key, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg,
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
}

func do(t *testing.T, hc *http.Client, method, url, body string) (int, map[string]any) {
	t.Helper()
	return doAuth(t, hc, "", method, url, body)
}

// doAuth is do with a bearer token ("" for none).
func doAuth(t *testing.T, hc *http.Client, token, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestRESTEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := newCluster(t)
	base := "https://" + c.http + "/api/v1"
	hc := restClient(t, c.certs, true)

	t.Run("invoke", func(t *testing.T) {
		code, m := do(t, hc, "POST", base+"/functions/player.get:invoke", `{"game_id":"demo","env":"dev","payload":{"player_id":"p3"}}`)
		if code != 200 || m["success"] != true || m["result"].(map[string]any)["player"].(map[string]any)["player_id"] != "p3" {
			t.Fatalf("invoke: %d %v", code, m)
		}
	})
	t.Run("errors carry the code, message and ErrorInfo", func(t *testing.T) {
		code, m := do(t, hc, "POST", base+"/functions/player.get:invoke", `{"game_id":"demo","env":"dev","payload":{"player_id":7}}`)
		if code != 400 || !strings.Contains(toJSON(m), `"INVALID_PAYLOAD"`) || !strings.Contains(toJSON(m), `"/player_id"`) {
			t.Fatalf("invalid payload: %d %v", code, m)
		}
		code, m = do(t, hc, "POST", base+"/functions/nope:invoke", `{"game_id":"demo","env":"dev"}`)
		if code != 404 {
			t.Fatalf("unknown function: %d %v", code, m)
		}
		code, _ = do(t, hc, "POST", base+"/functions/player.get:invoke", `{"game_id":"demo",`)
		if code != 400 {
			t.Fatalf("malformed JSON: %d", code)
		}
		code, _ = do(t, hc, "POST", base+"/functions/player.get:invoke", `{"game_id":"demo","env":"dev","bogus":1}`)
		if code != 400 {
			t.Fatalf("unknown field: %d", code)
		}
		big := `{"game_id":"demo","env":"dev","payload":{"player_id":"` + strings.Repeat("x", 10<<20) + `"}}`
		code, m = do(t, hc, "POST", base+"/functions/player.get:invoke", big)
		if code != 413 || !strings.Contains(toJSON(m), "REQUEST_TOO_LARGE") {
			t.Fatalf("10 MB body: %d %v", code, m)
		}
	})
	t.Run("no client certificate is 401", func(t *testing.T) {
		code, m := do(t, restClient(t, c.certs, false), "GET", base+"/registrations", "")
		if code != 401 {
			t.Fatalf("got %d %v", code, m)
		}
	})
	t.Run("registrations, agents, openapi", func(t *testing.T) {
		code, m := do(t, hc, "GET", base+"/registrations?game_id=demo&env=dev&function_id=game.stats", "")
		if code != 200 || len(m["registrations"].([]any)) != 1 {
			t.Fatalf("registrations: %d %v", code, m)
		}
		code, m = do(t, hc, "GET", base+"/agents?game_id=demo", "")
		if code != 200 || len(m["agents"].([]any)) != 2 {
			t.Fatalf("agents: %d %v", code, m)
		}
		code, m = do(t, hc, "GET", base+"/openapi.json", "")
		if code != 200 || m["paths"].(map[string]any)["/api/v1/functions/{function_id}:invoke"] == nil {
			t.Fatalf("openapi: %d", code)
		}
	})
	t.Run("jobs: start, SSE events, get, list, cancel", func(t *testing.T) {
		code, m := do(t, hc, "POST", base+"/jobs", `{"game_id":"demo","env":"dev","function_id":"mail.broadcast","payload":{"subject":"s","body":"b","recipients":["p1","p2","p3"]}}`)
		if code != 200 || m["job_id"] == nil {
			t.Fatalf("start: %d %v", code, m)
		}
		id := m["job_id"].(string)
		resp, err := hc.Get(base + "/jobs/" + id + "/events")
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		var types, dataTypes []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				types = append(types, ev)
			}
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev struct{ Type string }
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatalf("SSE data %q: %v", data, err)
				}
				dataTypes = append(dataTypes, ev.Type)
			}
		}
		resp.Body.Close()
		if got := strings.Join(types, ","); got != "START,LOG,PROGRESS,PROGRESS,PROGRESS,LOG,DONE" {
			t.Fatalf("SSE events: %s", got)
		}
		// Each event's data says its type too, START (the enum's zero) included.
		if got := strings.Join(dataTypes, ","); got != strings.Join(types, ",") {
			t.Fatalf("SSE data types %s, events %s", got, strings.Join(types, ","))
		}
		code, m = do(t, hc, "GET", base+"/jobs/"+id, "")
		if code != 200 || m["job"].(map[string]any)["status"] != "completed" {
			t.Fatalf("get: %d %v", code, m)
		}
		code, m = do(t, hc, "GET", base+"/jobs?status=completed&function_id=mail.broadcast", "")
		if code != 200 || len(m["jobs"].([]any)) < 1 {
			t.Fatalf("list: %d %v", code, m)
		}
		code, m = do(t, hc, "POST", base+"/jobs/"+id+":cancel", `{"reason":"late"}`)
		if code != 400 || !strings.Contains(toJSON(m), "JOB_FINISHED") {
			t.Fatalf("cancel finished job: %d %v", code, m)
		}
		code, _ = do(t, hc, "GET", base+"/jobs/job_doesnotexist", "")
		if code != 404 {
			t.Fatalf("unknown job: %d", code)
		}
	})
}

func toJSON(v any) string {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	return b.String()
}
