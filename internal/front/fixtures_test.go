package front_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/lambdahttp"
	"github.com/masterkv/masterkv/internal/orchestratorapi"
)

// fixtureCase is what one file of events/ is fed to and what it must do.
type fixtureCase struct {
	fn string
	// setup prepares the group and returns the orchestrator source the
	// populate function asks (nil: none).
	setup func(t *testing.T, g *group) populate.Source
	check func(t *testing.T, g *group, f functions, payload, out []byte, err error)
}

// receipt is the node's answer to a committed failover.
type receipt struct {
	Cluster   string             `json:"cluster"`
	Master    string             `json:"master"`
	Epoch     uint64             `json:"epoch"`
	Pairs     []discovery.KVPair `json:"pairs"`
	ID        string             `json:"id"`
	Duplicate bool               `json:"duplicate"`
}

// orchestratorAnswer is orchestrator's response shape, strictly.
type orchestratorAnswer struct {
	Code    string
	Message string
	Details []discovery.KVPair
}

// fixtureCases covers every file in events/: TestFixtures fails on a file
// without a case, so no fixture can rot unloaded.
var fixtureCases = map[string]fixtureCase{
	"failover-json.json": {fn: "failover", check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		var rc receipt
		decodeBody(t, mustHTTP(t, out, err, 200), &rc)
		if rc.Cluster != "orders" || rc.Master != "10.0.0.12:3306" || rc.ID != "failover-orders-4711" || rc.Duplicate || len(rc.Pairs) != 6 {
			t.Errorf("receipt = %+v, want orders = 10.0.0.12:3306 under the body's id", rc)
		}
		g.waitRecord(t, "orders", "10.0.0.12:3306")
		// Delivered again: the same key, the first answer, no new entry.
		id, idx := g.lastIndex(t)
		out, err = f.invoke(t, "failover", payload)
		var again receipt
		decodeBody(t, mustHTTP(t, out, err, 200), &again)
		if !again.Duplicate || again.Epoch != rc.Epoch {
			t.Errorf("redelivery = %+v, want a duplicate of epoch %d", again, rc.Epoch)
		}
		g.assertNoNewEntry(t, id, idx)
	}},
	"failover-form.json": {fn: "failover", check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		var rc receipt
		decodeBody(t, mustHTTP(t, out, err, 200), &rc)
		if rc.Cluster != "billing" || rc.Master != "10.0.1.20:3306" || rc.ID != "failover-billing-0815" {
			t.Errorf("receipt = %+v, want billing = 10.0.1.20:3306 under the header's key", rc)
		}
		g.waitRecord(t, "billing", "10.0.1.20:3306")
	}},
	"failover-signed.json": {fn: "failover", check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		var rc receipt
		decodeBody(t, mustHTTP(t, out, err, 200), &rc)
		if rc.Cluster != "payments" || rc.Master != "10.0.2.30:3306" || !strings.HasPrefix(rc.ID, "sha256-") {
			t.Errorf("receipt = %+v, want payments = 10.0.2.30:3306 under a derived key", rc)
		}
		g.waitRecord(t, "payments", "10.0.2.30:3306")
	}},
	"failover-bad-signature.json": {fn: "failover", check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		a := mustHTTP(t, out, err, 401)
		var e map[string]string
		decodeBody(t, a, &e)
		if !strings.Contains(e["error"], "bad signature") || a.Headers["WWW-Authenticate"] == "" {
			t.Errorf("answer %+v, want a bad-signature 401 with WWW-Authenticate", a)
		}
		g.assertNoRecord(t, "payments")
	}},
	"submit-all.json": {fn: "submit", setup: func(t *testing.T, g *group) populate.Source {
		g.seed(t, "orders", "10.0.0.12", 3306)
		g.seed(t, "billing", "10.0.1.20", 3306)
		return nil
	}, check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		var a orchestratorAnswer
		decodeStrict(t, mustHTTP(t, out, err, 200), &a)
		if a.Code != "OK" || a.Message != "Submitted 2 masters" || len(a.Details) != 12 {
			t.Errorf("answer = %+v, want OK, 2 masters, 12 pairs", a)
		}
	}},
	"submit-alias.json": {fn: "submit", setup: func(t *testing.T, g *group) populate.Source {
		g.seed(t, "orders", "10.0.0.12", 3306)
		g.seed(t, "billing", "10.0.1.20", 3306)
		return nil
	}, check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		var a orchestratorAnswer
		decodeStrict(t, mustHTTP(t, out, err, 200), &a)
		if a.Code != "OK" || a.Message != "Submitted 1 masters" || len(a.Details) != 6 || a.Details[0] != (discovery.KVPair{Key: "mysql/master/orders", Value: "10.0.0.12:3306"}) {
			t.Errorf("answer = %+v, want OK, 1 master, the 6 pairs of orders", a)
		}
	}},
	"populate-schedule.json": {fn: "populate", setup: func(t *testing.T, g *group) populate.Source {
		g.seed(t, "orders", "10.0.0.12", 3306)
		return nil
	}, check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		mustCounts(t, out, err, populate.Counts{Checked: 3, Submitted: 2, Skipped: 1})
		g.waitRecord(t, "inventory", "10.0.3.40:3306")
		g.waitRecord(t, "search", "10.0.4.50:3307")
		// Scheduler retries the same run: same keys, nothing committed.
		id, idx := g.lastIndex(t)
		out, err = f.invoke(t, "populate", payload)
		mustCounts(t, out, err, populate.Counts{Checked: 3, Submitted: 2, Skipped: 1})
		g.assertNoNewEntry(t, id, idx)
	}},
	"populate-scheduled-event.json": {fn: "populate", setup: func(t *testing.T, g *group) populate.Source {
		g.seed(t, "search", "10.0.4.50", 3307)
		return orchestrator(t, fakeOrchestrator(t,
			[]map[string]string{{"ClusterName": "db-7:3306", "ClusterAlias": "search"}, {"ClusterName": "db-8:3306", "ClusterAlias": ""}},
			map[string]*orchestratorapi.Master{"search": {Host: "10.0.5.60", Port: 3306}, "db-8:3306": {Host: "10.0.5.61", Port: 3306}}))
	}, check: func(t *testing.T, g *group, f functions, payload, out []byte, err error) {
		mustCounts(t, out, err, populate.Counts{Checked: 2, Submitted: 1, Skipped: 1})
		g.waitRecord(t, "db-8:3306", "10.0.5.61:3306")
		g.waitRecord(t, "search", "10.0.4.50:3307") // populate only fills gaps
		id, idx := g.lastIndex(t)
		out, err = f.invoke(t, "populate", payload)
		mustCounts(t, out, err, populate.Counts{Checked: 2, Submitted: 1, Skipped: 1})
		g.assertNoNewEntry(t, id, idx)
	}},
}

// TestFixtures feeds every file in events/ to its function against a
// fresh live group. A file without a case fails, and so does a case
// without a file.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(eventsDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", eventsDir, err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		tc, ok := fixtureCases[name]
		if !ok {
			t.Errorf("events/%s is loaded by no test: add a case to fixtureCases", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			g := newGroup(t, groupOptions{})
			var src populate.Source
			if tc.setup != nil {
				src = tc.setup(t, g)
			}
			f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, src)
			payload := fixture(t, name)
			out, err := f.invoke(t, tc.fn, payload)
			tc.check(t, g, f, payload, out, err)
		})
	}
	for name := range fixtureCases {
		if !seen[name] {
			t.Errorf("fixtureCases has %s, but events/ has no such file", name)
		}
	}
}

// TestHTTPFixturesDecodeAsBothTriggers: every HTTP fixture reads the same
// as a Function URL event and as an HTTP API v2 event, the two payload
// types the HTTP functions take.
func TestHTTPFixturesDecodeAsBothTriggers(t *testing.T) {
	for name, tc := range fixtureCases {
		if tc.fn == "populate" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			payload := fixture(t, name)
			var api events.APIGatewayV2HTTPRequest
			var url events.LambdaFunctionURLRequest
			if err := json.Unmarshal(payload, &api); err != nil {
				t.Fatalf("as HTTP API: %v", err)
			}
			if err := json.Unmarshal(payload, &url); err != nil {
				t.Fatalf("as Function URL: %v", err)
			}
			// The Function URL view, carried into the common type.
			b, _ := json.Marshal(url)
			var viaURL events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(b, &viaURL); err != nil {
				t.Fatal(err)
			}
			viaURL.PathParameters = api.PathParameters // Function URLs have no routes
			got, err1 := lambdahttp.Parse(viaURL)
			want, err2 := lambdahttp.Parse(api)
			if err1 != nil || err2 != nil {
				t.Fatalf("Parse: %v, %v", err1, err2)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("as Function URL %+v\nas HTTP API %+v", got, want)
			}
			if got.Method == "" || got.Path == "" || got.RequestID == "" {
				t.Errorf("request %+v lacks method, path or request id", got)
			}
		})
	}
}

// TestScheduleFixturesDecode: the schedule fixtures are what the two
// schedulers deliver.
func TestScheduleFixturesDecode(t *testing.T) {
	var in populate.Input
	if err := json.Unmarshal(fixture(t, "populate-schedule.json"), &in); err != nil || len(in.Masters) == 0 || in.ScheduleARN == "" || in.ScheduledTime == "" {
		t.Errorf("populate-schedule.json = %+v, %v; want masters and both context attributes", in, err)
	}
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(fixture(t, "populate-scheduled-event.json"), &ev); err != nil || ev.DetailType != populate.ScheduledEventType || ev.Source != "aws.events" || ev.ID == "" || ev.Time.IsZero() {
		t.Errorf("populate-scheduled-event.json = %+v, %v; want a Scheduled Event from aws.events with id and time", ev, err)
	}
}

// mustCounts checks a populate result.
func mustCounts(t *testing.T, out []byte, err error, want populate.Counts) {
	t.Helper()
	if err != nil {
		t.Fatalf("populate: %v", err)
	}
	var got populate.Counts
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("populate answer %s: %v", out, err)
	}
	if got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	if keys := jsonKeys(t, out); !slices.Equal(keys, []string{"checked", "skipped", "submitted"}) {
		t.Errorf("answer keys = %v, want checked, skipped, submitted", keys)
	}
}

// decodeStrict decodes an answer's JSON body, refusing unknown fields.
func decodeStrict(t *testing.T, a httpAnswer, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(a.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %s: %v", a.Body, err)
	}
}

func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
