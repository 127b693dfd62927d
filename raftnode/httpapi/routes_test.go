package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestUnroutedRequestsAnswerJSONAfterAuth is issue 10 item 5: a path the
// API does not serve, or a method a path does not take, answered Go's plain
// text "404 page not found" / "Method Not Allowed" before any token check,
// so anyone could map the API, and a client parsing JSON errors choked.
// Now the token is checked first (401 without it), then 404 or 405 answer
// in the API's error shape, orchestrator's under /api/, with Allow.
func TestUnroutedRequestsAnswerJSONAfterAuth(t *testing.T) {
	c := newAPICluster(t, clusterOptions{})
	tests := []struct {
		name, method, path string
		status             int
		allow              string // want the Allow header to list these
		orchestrator       bool   // {"Code":"ERROR",...} instead of {"error":...}
	}{
		{"unknown path", "GET", "/v2/nothing", http.StatusNotFound, "", false},
		{"unknown under v1", "POST", "/v1/failovers", http.StatusNotFound, "", false},
		{"wrong method", "DELETE", "/v1/failover", http.StatusMethodNotAllowed, "POST", false},
		{"get of a write", "GET", "/v1/populate", http.StatusMethodNotAllowed, "POST", false},
		{"orchestrator path", "GET", "/api/no-such-command", http.StatusNotFound, "", true},
		{"orchestrator method", "PUT", "/api/submit-masters-to-kv-stores", http.StatusMethodNotAllowed, "GET", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			anon := c.do(t, 0, tc.method, tc.path, "", "Authorization", "")
			mustStatus(t, anon, http.StatusUnauthorized)
			if ct := anon.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("401 Content-Type = %q, want application/json; body %s", ct, anon.body)
			}

			r := c.do(t, 0, tc.method, tc.path, "")
			mustStatus(t, r, tc.status)
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json; body %s", ct, r.body)
			}
			if tc.orchestrator {
				var o struct {
					Code, Message string
					Details       any
				}
				decodeStrict(t, r.body, &o)
				if o.Code != "ERROR" || o.Message == "" || o.Details != nil {
					t.Errorf("answer = %+v, want orchestrator's ERROR shape with a message", o)
				}
			} else {
				mustKeys(t, r.body, "error")
				var e struct{ Error string }
				if err := json.Unmarshal(r.body, &e); err != nil || !strings.Contains(e.Error, tc.path) {
					t.Errorf("error = %q (%v), want it to name %s", e.Error, err, tc.path)
				}
			}
			if tc.allow != "" && !strings.Contains(r.header.Get("Allow"), tc.allow) {
				t.Errorf("Allow = %q, want it to list %s", r.header.Get("Allow"), tc.allow)
			}
		})
	}
	// The unauthenticated endpoints stay open.
	mustStatus(t, c.do(t, 0, "GET", "/healthz", "", "Authorization", ""), http.StatusOK)
}
