package nodeclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/nodeclient"
)

// fakeNode is an httptest node: these tests cover the error paths (503s,
// hangs, dead addresses) that a real node group cannot be made to produce
// on demand; the handlers' tests run against real in-process groups.
type fakeNode struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   int
	got    []*http.Request
	bodies []string
	answer func(n int) (int, string) // status and body for hit n (1-based)
}

func newFakeNode(t *testing.T, answer func(n int) (int, string)) *fakeNode {
	t.Helper()
	f := &fakeNode{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.hits++
		n := f.hits
		f.got = append(f.got, r)
		f.bodies = append(f.bodies, string(b))
		f.mu.Unlock()
		status, body := f.answer(n)
		if status == 0 { // hang until the client gives up
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

func always(status int, body string) func(int) (int, string) {
	return func(int) (int, string) { return status, body }
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func newClient(t *testing.T, attempts int, nodes ...string) *nodeclient.Client {
	t.Helper()
	c, err := nodeclient.New(nodeclient.Config{
		Nodes: nodes, Token: "node-token", Timeout: 2 * time.Second, ConnectTimeout: time.Second, Attempts: attempts,
	}, nodeclient.Options{Backoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

var req = nodeclient.Request{
	Method: http.MethodPost, Path: "/v1/failover?wait=all", Body: []byte(`{"cluster":"a"}`),
	ContentType: "application/json", IdempotencyKey: "key-1",
}

func TestDoSendsCredentialsAndKey(t *testing.T) {
	n := newFakeNode(t, always(200, `{"ok":true}`))
	resp, err := newClient(t, 3, n.srv.URL+"/").Do(t.Context(), req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if resp.Status != 200 || string(resp.Body) != `{"ok":true}` || resp.ContentType != "application/json" || resp.Node != n.srv.URL {
		t.Errorf("response = %+v", resp)
	}
	got := n.got[0]
	for h, want := range map[string]string{
		"Authorization": "Bearer node-token", "Idempotency-Key": "key-1", "Content-Type": "application/json",
	} {
		if v := got.Header.Get(h); v != want {
			t.Errorf("header %s = %q, want %q", h, v, want)
		}
	}
	if got.Method != http.MethodPost || got.URL.RequestURI() != "/v1/failover?wait=all" || n.bodies[0] != `{"cluster":"a"}` {
		t.Errorf("request = %s %s %q", got.Method, got.URL.RequestURI(), n.bodies[0])
	}
}

func TestDoRefusesRequestWithoutKey(t *testing.T) {
	n := newFakeNode(t, always(200, `{}`))
	r := req
	r.IdempotencyKey = ""
	if _, err := newClient(t, 3, n.srv.URL).Do(t.Context(), r); !errors.Is(err, nodeclient.ErrNoKey) {
		t.Fatalf("Do = %v, want ErrNoKey", err)
	}
	if n.count() != 0 {
		t.Errorf("node got %d requests, want none", n.count())
	}
}

func TestDoNextNode(t *testing.T) {
	tests := []struct {
		name  string
		first func(t *testing.T) (url string, hits func() int)
	}{
		{"connection refused", func(t *testing.T) (string, func() int) { return deadURL(t), func() int { return 1 } }},
		{"503 no leader", func(t *testing.T) (string, func() int) {
			n := newFakeNode(t, always(503, `{"error":"no leader"}`))
			return n.srv.URL, n.count
		}},
		{"502 from a proxy", func(t *testing.T) (string, func() int) {
			n := newFakeNode(t, always(502, `<html>bad gateway</html>`))
			return n.srv.URL, n.count
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, firstHits := tc.first(t)
			second := newFakeNode(t, always(200, `{"cluster":"a"}`))
			c := newClient(t, 4, first, second.srv.URL)
			resp, err := c.Do(t.Context(), req)
			if err != nil || resp.Status != 200 || resp.Node != second.srv.URL {
				t.Fatalf("Do = %+v, %v; want 200 from the second node", resp, err)
			}
			if firstHits() != 1 {
				t.Errorf("first node tried %d times, want 1", firstHits())
			}
			// A warm client starts with the node that answered last.
			if _, err := c.Do(t.Context(), req); err != nil {
				t.Fatalf("second Do: %v", err)
			}
			if firstHits() != 1 || second.count() != 2 {
				t.Errorf("after a second call: first node %d tries, second %d; want 1 and 2", firstHits(), second.count())
			}
		})
	}
}

func TestDoRelaysClientErrors(t *testing.T) {
	first := newFakeNode(t, always(409, `{"error":"conflict"}`))
	second := newFakeNode(t, always(200, `{}`))
	resp, err := newClient(t, 4, first.srv.URL, second.srv.URL).Do(t.Context(), req)
	if err != nil || resp.Status != 409 {
		t.Fatalf("Do = %+v, %v; want the 409 relayed", resp, err)
	}
	if second.count() != 0 {
		t.Errorf("a 409 was retried on another node")
	}
}

func TestDoRetriesUntilLeader(t *testing.T) {
	// An election in progress: 503 twice, then the answer.
	n := newFakeNode(t, func(i int) (int, string) {
		if i <= 2 {
			return 503, `{"error":"no leader"}`
		}
		return 200, `{"epoch":7}`
	})
	resp, err := newClient(t, 3, n.srv.URL).Do(t.Context(), req)
	if err != nil || resp.Status != 200 || n.count() != 3 {
		t.Fatalf("Do = %+v, %v after %d tries; want 200 on the third", resp, err, n.count())
	}
	keys := map[string]bool{}
	for _, r := range n.got {
		keys[r.Header.Get("Idempotency-Key")] = true
	}
	if len(keys) != 1 || !keys["key-1"] {
		t.Errorf("idempotency keys over the retries = %v, want only key-1", keys)
	}
}

func TestDoGivesUp(t *testing.T) {
	a := newFakeNode(t, always(503, `{"error":"no leader: election in progress"}`))
	b := deadURL(t)
	resp, err := newClient(t, 5, a.srv.URL, b).Do(t.Context(), req)
	if !errors.Is(err, nodeclient.ErrUnavailable) {
		t.Fatalf("Do = %v, want ErrUnavailable", err)
	}
	if a.count() != 3 {
		t.Errorf("503 node tried %d times, want 3 of the 5 attempts", a.count())
	}
	if resp.Status != 503 {
		t.Errorf("last response status = %d, want the last 503", resp.Status)
	}
	for _, s := range []string{"no leader: election in progress", "connection refused", a.srv.URL, b} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "node-token") {
		t.Errorf("error %q reveals the token", err)
	}
}

// TestDoKeepsToTheDeadline: a node that never answers costs at most the
// time left before the caller's deadline, minus the margin for answering.
func TestDoKeepsToTheDeadline(t *testing.T) {
	hang := newFakeNode(t, always(0, ""))
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newClient(t, 10, hang.srv.URL).Do(ctx, req)
	took := time.Since(start)
	if !errors.Is(err, nodeclient.ErrUnavailable) {
		t.Fatalf("Do = %v, want ErrUnavailable", err)
	}
	if took > 1200*time.Millisecond {
		t.Errorf("Do took %s with a 1.5s deadline, want it back 500ms before", took)
	}
	if ctx.Err() != nil {
		t.Errorf("the caller's deadline passed before Do returned")
	}
}

func TestDoTooLarge(t *testing.T) {
	n := newFakeNode(t, always(200, strings.Repeat("x", nodeclient.MaxResponseBytes+1)))
	other := newFakeNode(t, always(200, `{}`))
	if _, err := newClient(t, 3, n.srv.URL, other.srv.URL).Do(t.Context(), req); !errors.Is(err, nodeclient.ErrTooLarge) {
		t.Fatalf("Do = %v, want ErrTooLarge", err)
	}
	if other.count() != 0 {
		t.Errorf("an oversized answer was retried on another node")
	}
}

func TestConfigValidate(t *testing.T) {
	good := nodeclient.Config{Nodes: []string{"http://10.0.0.1:8080"}, Token: "t", Timeout: 12 * time.Second, ConnectTimeout: 2 * time.Second, Attempts: 6}
	tests := []struct {
		name   string
		change func(*nodeclient.Config)
		want   string
	}{
		{"good", func(*nodeclient.Config) {}, ""},
		{"several with blanks", func(c *nodeclient.Config) { c.Nodes = []string{" https://n1:8443/prefix/ ", "", "http://n2"} }, ""},
		{"no nodes", func(c *nodeclient.Config) { c.Nodes = []string{" "} }, "MASTERKV_NODES must list"},
		{"not a URL", func(c *nodeclient.Config) { c.Nodes = []string{"10.0.0.1:8080"} }, `MASTERKV_NODES entry "10.0.0.1:8080"`},
		{"ftp", func(c *nodeclient.Config) { c.Nodes = []string{"ftp://n1"} }, "MASTERKV_NODES entry"},
		{"credentials in URL", func(c *nodeclient.Config) { c.Nodes = []string{"http://u:p@n1"} }, "must not carry credentials"},
		{"no token", func(c *nodeclient.Config) { c.Token = "" }, "MASTERKV_NODE_TOKEN must be set"},
		{"token with space", func(c *nodeclient.Config) { c.Token = "a b" }, "MASTERKV_NODE_TOKEN must not contain"},
		{"timeout tiny", func(c *nodeclient.Config) { c.Timeout = time.Millisecond }, "MASTERKV_NODE_TIMEOUT"},
		{"connect above timeout", func(c *nodeclient.Config) { c.ConnectTimeout = time.Minute }, "MASTERKV_NODE_CONNECT_TIMEOUT"},
		{"negative hedge delay", func(c *nodeclient.Config) { c.HedgeDelay = -time.Second }, "MASTERKV_NODE_HEDGE_DELAY"},
		{"hedge delay at timeout", func(c *nodeclient.Config) { c.HedgeDelay = c.Timeout }, "MASTERKV_NODE_HEDGE_DELAY"},
		{"no attempts", func(c *nodeclient.Config) { c.Attempts = 0 }, "MASTERKV_NODE_ATTEMPTS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
