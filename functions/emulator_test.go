//go:build unix

package functions_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/webhook"
)

// The credentials the fixtures in events/ were made with.
const (
	fixtureToken  = "fixture-webhook-token-0001"
	fixtureSecret = "fixture-hmac-secret-0001"
)

// lambdaHTTPAnswer is an HTTP function's payload-2.0 answer.
type lambdaHTTPAnswer struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// emulatorCase is what one fixture must do through the real binary.
type emulatorCase struct {
	fn string
	// prepare returns the payload of the cold invocation (default: the
	// fixture as it is).
	prepare func(t *testing.T, fixture []byte) []byte
	// check judges the answer; it may invoke e again (warm).
	check func(t *testing.T, g *nodeGroup, e *emulator, fixture, answer []byte)
}

func httpAnswer(t *testing.T, answer []byte, status int) lambdaHTTPAnswer {
	t.Helper()
	var a lambdaHTTPAnswer
	if err := json.Unmarshal(answer, &a); err != nil || a.StatusCode != status {
		t.Fatalf("answer %s (%v), want status %d", answer, err, status)
	}
	return a
}

// emulatorCases covers every file in events/, as fixtureCases does in
// internal/front; TestEmulator fails on a file without a case. The
// checks do not depend on the order the fixtures run in.
var emulatorCases = map[string]emulatorCase{
	"failover-json.json": {fn: "failover", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		httpAnswer(t, answer, 200)
		g.waitMaster(t, "orders", "10.0.0.12:3306")
	}},
	"failover-form.json": {fn: "failover", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		httpAnswer(t, answer, 200)
		g.waitMaster(t, "billing", "10.0.1.20:3306")
	}},
	"failover-signed.json": {fn: "failover", prepare: resignNow, check: func(t *testing.T, g *nodeGroup, e *emulator, fixture, answer []byte) {
		httpAnswer(t, answer, 200)
		g.waitMaster(t, "payments", "10.0.2.30:3306")
		// As stored, the fixture's timestamp is long past: refused.
		a := httpAnswer(t, e.invoke(t, fixture), 401)
		if !strings.Contains(a.Body, "outside the 5m0s window") {
			t.Errorf("stale fixture answer %s, want the window refusal", a.Body)
		}
	}},
	"failover-bad-signature.json": {fn: "failover", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		a := httpAnswer(t, answer, 401)
		if !strings.Contains(a.Body, "bad signature") {
			t.Errorf("answer %s, want bad signature", a.Body)
		}
		for i := range g.urls {
			if m := g.master(t, i, "payments"); m == "10.66.6.6:3306" {
				t.Errorf("node%d holds the badly signed master", i+1)
			}
		}
	}},
	"submit-all.json": {fn: "submit", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		var a struct {
			Code    string
			Message string
			Details []struct{ Key, Value string }
		}
		if err := json.Unmarshal([]byte(httpAnswer(t, answer, 200).Body), &a); err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscanf(a.Message, "Submitted %d masters", &n); err != nil || a.Code != "OK" || n < 1 || len(a.Details) != 6*n {
			t.Errorf("answer %+v, want OK with 6 pairs per submitted master", a)
		}
	}},
	"submit-alias.json": {fn: "submit", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		var a struct {
			Code    string
			Message string
			Details []struct{ Key, Value string }
		}
		if err := json.Unmarshal([]byte(httpAnswer(t, answer, 200).Body), &a); err != nil {
			t.Fatal(err)
		}
		if a.Code != "OK" || a.Message != "Submitted 1 masters" || len(a.Details) != 6 || a.Details[0].Key != "mysql/master/orders" {
			t.Errorf("answer %+v, want the 6 pairs of orders", a)
		}
	}},
	"populate-schedule.json": {fn: "populate", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		var c struct{ Checked, Submitted, Skipped int }
		if err := json.Unmarshal(answer, &c); err != nil || c.Checked != 3 || c.Submitted+c.Skipped != 3 || c.Skipped < 1 {
			t.Errorf("answer %s, want 3 checked, orders (seeded) among the skipped", answer)
		}
		g.waitMaster(t, "inventory", "10.0.3.40:3306")
	}},
	"populate-scheduled-event.json": {fn: "populate", check: func(t *testing.T, g *nodeGroup, e *emulator, _, answer []byte) {
		var c struct{ Checked, Submitted, Skipped int }
		if err := json.Unmarshal(answer, &c); err != nil || c.Checked != 2 || c.Submitted+c.Skipped != 2 {
			t.Errorf("answer %s, want the 2 masters of the orchestrator", answer)
		}
		g.waitMaster(t, "db-8:3306", "10.0.5.61:3306")
	}},
}

// resignNow re-signs a validly signed fixture at the current time, as a
// sender would, with the fixture secret; a bad signature stays bad.
func resignNow(t *testing.T, fixture []byte) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(fixture, &ev); err != nil {
		t.Fatal(err)
	}
	h := ev["headers"].(map[string]any)
	sig := h["x-masterkv-signature"].(string)
	signed := webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte(ev["body"].(string))} // the signed fixtures are failovers
	if fresh, ok := webhook.Refresh(sig, signed, []string{fixtureSecret}, time.Now()); ok {
		h["x-masterkv-signature"] = fresh
	}
	b, _ := json.Marshal(ev)
	return b
}

// TestEmulator builds the three bootstraps for this machine (go build
// -tags lambda.norpc), starts three real raftnode processes, and invokes
// each fixture of events/ once on a fresh aws-lambda-rie, so that every
// invocation is a cold start. It reports the emulator's figures and
// checks that no credential reaches the functions' logs.
func TestEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
	rie := rieBinary(t)
	dir := t.TempDir()
	g := startNodeGroup(t, dir)
	bootstraps := map[string]string{}
	for _, fn := range []string{"failover", "submit", "populate"} {
		bootstraps[fn] = filepath.Join(dir, fn, "bootstrap")
		goBuild(t, "./functions/"+fn, bootstraps[fn], "lambda.norpc")
	}
	orch := fakeOrchestrator(t)
	g.post(t, "/v1/failover", map[string]any{"cluster": "orders", "host": "10.0.0.11", "port": 3306})
	g.waitMaster(t, "orders", "10.0.0.11:3306")

	files, err := filepath.Glob(filepath.Join(root, "events", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	type figure struct {
		fixture, fn string
		cs          coldStart
	}
	var figures []figure
	for _, path := range files {
		name := filepath.Base(path)
		tc, ok := emulatorCases[name]
		if !ok {
			t.Errorf("events/%s is run by no emulator case: add it to emulatorCases", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			fixture, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			env := []string{
				// The first node URL is dead: the real binary must go on.
				"MASTERKV_NODES=" + deadURL(t) + "," + strings.Join(g.urls, ","),
				"MASTERKV_NODE_TOKEN=" + g.token,
				"MASTERKV_WEBHOOK_TOKENS=" + fixtureToken, "MASTERKV_WEBHOOK_SECRETS=" + fixtureSecret,
				"MASTERKV_ORCHESTRATOR_URL=" + orch,
			}
			e := startEmulator(t, rie, bootstraps[tc.fn], filepath.Join(dir, name+".log"), env)
			payload := fixture
			if tc.prepare != nil {
				payload = tc.prepare(t, fixture)
			}
			answer := e.invoke(t, payload)
			cs := e.coldStart(t)
			tc.check(t, g, e, fixture, answer)
			figures = append(figures, figure{name, tc.fn, cs})
			out := e.output()
			for _, secret := range []string{fixtureToken, fixtureSecret, g.token} {
				if strings.Contains(out, secret) {
					t.Errorf("the function's output contains a credential")
				}
			}
		})
	}
	for name := range emulatorCases {
		if _, err := os.Stat(filepath.Join(root, "events", name)); err != nil {
			t.Errorf("emulatorCases has %s, but events/ has no such file", name)
		}
	}
	// The figures for docs/LAMBDA.md: the REPORT line's Init Duration, and
	// the emulator's INIT REPORT (process start until the bootstrap asks
	// for its first invocation), with each bootstrap's size.
	var b strings.Builder
	fmt.Fprintf(&b, "\n| fixture | function | bootstrap MB | REPORT Init Duration ms | INIT REPORT durationMs |\n|---|---|---|---|---|\n")
	var inits []float64
	for _, f := range figures {
		st, _ := os.Stat(bootstraps[f.fn])
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f | %.2f |\n", f.fixture, f.fn, float64(st.Size())/(1<<20), f.cs.reportMs, f.cs.rapidMs)
		inits = append(inits, f.cs.rapidMs)
	}
	// Logged, not asserted: speed targets live in docs/BENCHMARKS.md, never
	// in timed tests that a loaded CI machine could fail.
	sort.Float64s(inits)
	t.Log(b.String(), "init durations (ms, sorted): ", inits)
}

// fakeOrchestrator stands in for orchestrator's two read endpoints
// (orchestrator needs MySQL and cannot run here).
func fakeOrchestrator(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/clusters-info", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `[{"ClusterName":"db-7:3306","ClusterAlias":"search"},{"ClusterName":"db-8:3306","ClusterAlias":""}]`)
	})
	mux.HandleFunc("GET /api/masters", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `[{"Key":{"Hostname":"10.0.5.60","Port":3306},"ClusterName":"db-7:3306"},{"Key":{"Hostname":"10.0.5.61","Port":3306},"ClusterName":"db-8:3306"}]`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + freeAddr(t)
}
