package front_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/front/submit"
	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/webhook"
)

// frontWith wires the failover and submit handlers to a node client with
// the given node token, logging into a buffer.
func frontWith(t *testing.T, token string, urls ...string) (functions, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	nodes, err := nodeclient.New(nodeclient.Config{
		Nodes: urls, Token: token, Timeout: 10 * time.Second, ConnectTimeout: time.Second, Attempts: 4,
	}, nodeclient.Options{Backoff: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	creds := webhook.Credentials{Tokens: []string{fixtureToken}, Secrets: []string{fixtureSecret}}
	return functions{
		failover: failover.New(nodes, creds.Verifier(fixedClock), log),
		submit:   submit.New(nodes, creds.Verifier(fixedClock), log),
	}, &logs
}

// TestFrontFaultsAreNotTheCallers is issue 10 item 8: with a wrong
// MASTERKV_NODE_TOKEN the nodes' 401 was relayed as the caller's own 401,
// although the caller's credentials were fine (the front is misconfigured:
// a 5xx, logged); and a 503 showed the caller the nodes' internal URLs
// and dial errors. Both are logged in full and answered in brief.
func TestFrontFaultsAreNotTheCallers(t *testing.T) {
	g := newGroup(t, groupOptions{})
	t.Run("wrong node token", func(t *testing.T) {
		f, logs := frontWith(t, "not-the-node-token-0123", g.urls...)
		id, idx := g.lastIndex(t)
		for _, fn := range []string{"failover", "submit"} {
			payload := fixture(t, "failover-json.json")
			if fn == "submit" {
				payload = fixture(t, "submit-all.json")
			}
			out, err := f.invoke(t, fn, payload)
			a := mustHTTP(t, out, err, http.StatusBadGateway)
			if a.Headers["WWW-Authenticate"] != "" || a.Headers["www-authenticate"] != "" {
				t.Errorf("%s: answer asks the caller for credentials: %v", fn, a.Headers)
			}
			for _, leak := range append([]string{"not-the-node-token-0123"}, g.urls...) {
				if strings.Contains(a.Body, leak) {
					t.Errorf("%s: answer %s shows %q", fn, a.Body, leak)
				}
			}
		}
		g.assertNoNewEntry(t, id, idx)
		if !strings.Contains(logs.String(), "MASTERKV_NODE_TOKEN") || strings.Contains(logs.String(), "not-the-node-token-0123") {
			t.Errorf("logs should name MASTERKV_NODE_TOKEN without its value:\n%s", logs)
		}
	})
	t.Run("no node answers", func(t *testing.T) {
		a, b := deadURL(t), deadURL(t)
		f, logs := frontWith(t, nodeToken, a, b)
		out, err := f.invoke(t, "failover", fixture(t, "failover-json.json"))
		ans := mustHTTP(t, out, err, http.StatusServiceUnavailable)
		for _, leak := range []string{a, b, strings.TrimPrefix(a, "http://"), "connection refused", "dial"} {
			if strings.Contains(ans.Body, leak) {
				t.Errorf("answer %s shows %q", ans.Body, leak)
			}
		}
		if !strings.Contains(ans.Body, "retry") {
			t.Errorf("answer %s does not tell the caller to retry", ans.Body)
		}
		if !containsAll(logs.String(), strings.TrimPrefix(a, "http://"), strings.TrimPrefix(b, "http://"), "connection refused") {
			t.Errorf("logs lack the nodes and the cause:\n%s", logs)
		}
	})
}
