package front_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/webhook"
)

// TestFailoverRefusals: every refused request answers its status with
// {"error": ...} and commits nothing.
func TestFailoverRefusals(t *testing.T) {
	g := newGroup(t, groupOptions{})
	clock := fixtureTime
	f := newFunctions(nodesClient(t, nil, g.urls...), func() time.Time { return clock }, nil)
	tests := []struct {
		name    string
		payload []byte
		now     time.Time
		status  int
		want    string
	}{
		{"bad signature", fixture(t, "failover-bad-signature.json"), fixtureTime, 401, "bad signature"},
		{"stale timestamp", fixture(t, "failover-signed.json"), fixtureTime.Add(webhook.Window + time.Second), 401, "outside the 5m0s window"},
		{"timestamp from the future", fixture(t, "failover-signed.json"), fixtureTime.Add(-webhook.Window - time.Second), 401, "outside the 5m0s window"},
		{"signature with an unknown secret", editFixture(t, "failover-signed.json", func(ev map[string]any) {
			headersOf(ev)["x-masterkv-signature"] = webhook.Sign("not-the-fixture-secret", fixtureTime, webhook.Request{Method: "POST", Route: "/v1/failover", Body: []byte(ev["body"].(string))})
		}), fixtureTime, 401, "bad signature"},
		{"unknown token", editFixture(t, "failover-json.json", func(ev map[string]any) {
			headersOf(ev)["authorization"] = "Bearer not-a-configured-token"
		}), fixtureTime, 401, "unknown token"},
		{"no credentials", editFixture(t, "failover-json.json", func(ev map[string]any) {
			delete(headersOf(ev), "authorization")
		}), fixtureTime, 401, "send Authorization"},
		{"GET", editFixture(t, "failover-json.json", func(ev map[string]any) {
			ev["requestContext"].(map[string]any)["http"].(map[string]any)["method"] = "GET"
		}), fixtureTime, 405, "use POST"},
		{"body not base64", editFixture(t, "failover-form.json", func(ev map[string]any) {
			ev["body"] = "cluster=billing&host=10.0.1.20&port=3306"
		}), fixtureTime, 400, "base64"},
		{"body over 64 KiB", editFixture(t, "failover-json.json", func(ev map[string]any) {
			ev["body"] = `{"cluster":"orders","pad":"` + strings.Repeat("x", 64<<10) + `"}`
		}), fixtureTime, 413, "64 KiB"},
		{"id and header differ", editFixture(t, "failover-json.json", func(ev map[string]any) {
			headersOf(ev)["idempotency-key"] = "another-key"
		}), fixtureTime, 400, "differs from the Idempotency-Key header"},
		{"id with a newline", editFixture(t, "failover-json.json", func(ev map[string]any) {
			ev["body"] = `{"cluster":"orders","host":"10.0.0.12","port":3306,"id":"a\nb"}`
		}), fixtureTime, 400, "id: must be printable ASCII"},
		{"key header too long", editFixture(t, "failover-form.json", func(ev map[string]any) {
			headersOf(ev)["idempotency-key"] = strings.Repeat("k", 201)
		}), fixtureTime, 400, "id: must be at most 200 bytes"},
		// Authenticated but invalid: the node's own 400 is relayed.
		{"bad port, relayed from the node", editFixture(t, "failover-json.json", func(ev map[string]any) {
			ev["body"] = `{"cluster":"orders","host":"10.0.0.12","port":70000}`
		}), fixtureTime, 400, "port"},
	}
	id, idx := g.lastIndex(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock = tc.now
			out, err := f.invoke(t, "failover", tc.payload)
			a := mustHTTP(t, out, err, tc.status)
			var e map[string]string
			decodeBody(t, a, &e)
			if !strings.Contains(e["error"], tc.want) {
				t.Errorf("error = %q, want it to contain %q", e["error"], tc.want)
			}
			for _, s := range []string{fixtureToken, fixtureSecret, nodeToken} {
				if strings.Contains(a.Body, s) {
					t.Errorf("answer %s reveals a credential", a.Body)
				}
			}
		})
	}
	g.assertNoEntryAndRecords(t, id, idx, "orders", "billing", "payments")
}

func (g *group) assertNoEntryAndRecords(t *testing.T, id string, idx uint64, clusters ...string) {
	t.Helper()
	g.assertNoNewEntry(t, id, idx)
	for _, c := range clusters {
		g.assertNoRecord(t, c)
	}
}

// TestFailoverBase64Bodies: base64-encoded bodies, JSON or form, signed
// or not, are decoded before the signature check and the forward.
func TestFailoverBase64Bodies(t *testing.T) {
	g := newGroup(t, groupOptions{})
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, nil)
	encode := func(ev map[string]any) {
		ev["body"] = base64.StdEncoding.EncodeToString([]byte(ev["body"].(string)))
		ev["isBase64Encoded"] = true
	}
	tests := []struct {
		name, fixture, cluster, master string
	}{
		{"json", "failover-json.json", "orders", "10.0.0.12:3306"},
		{"signed json", "failover-signed.json", "payments", "10.0.2.30:3306"},
		{"form", "failover-form.json", "billing", "10.0.1.20:3306"}, // already base64
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := fixture(t, tc.fixture)
			if tc.fixture != "failover-form.json" {
				payload = editFixture(t, tc.fixture, encode)
			}
			out, err := f.invoke(t, "failover", payload)
			var rc receipt
			decodeBody(t, mustHTTP(t, out, err, 200), &rc)
			if rc.Cluster != tc.cluster || rc.Master != tc.master {
				t.Errorf("receipt = %+v, want %s = %s", rc, tc.cluster, tc.master)
			}
		})
	}
}

// TestFailoverNextNode: the first node URL is down; the function goes on
// to the next and the failover commits once.
func TestFailoverNextNode(t *testing.T) {
	g := newGroup(t, groupOptions{})
	rec := &recorder{}
	dead := deadURL(t)
	f := newFunctions(nodesClient(t, rec, dead, g.urls[0], g.urls[1]), fixedClock, nil)
	out, err := f.invoke(t, "failover", fixture(t, "failover-json.json"))
	var rc receipt
	decodeBody(t, mustHTTP(t, out, err, 200), &rc)
	if rc.Master != "10.0.0.12:3306" || rc.Duplicate {
		t.Errorf("receipt = %+v", rc)
	}
	got := rec.attempts()
	if len(got) != 2 || got[0].node != dead || got[0].status != 0 || got[1].node != g.urls[0] || got[1].status != 200 {
		t.Errorf("attempts = %+v, want a failed connect to %s, then 200 from %s", got, dead, g.urls[0])
	}
	if got[0].key != "failover-orders-4711" || got[1].key != got[0].key {
		t.Errorf("idempotency keys %q, %q; want the body's id on both", got[0].key, got[1].key)
	}
	g.waitRecord(t, "orders", "10.0.0.12:3306")
}

// TestFailoverRetryOn503: the first node is a follower cut off from the
// group, so it has no leader and answers 503 (a real node, not a fake);
// the function retries on the next node with the same key.
func TestFailoverRetryOn503(t *testing.T) {
	g := newGroup(t, groupOptions{leaderWait: 300 * time.Millisecond})
	leader := g.leader(t)
	follower := (leader + 1) % 3
	g.raft.Isolate(follower)
	deadline := time.Now().Add(10 * time.Second)
	for g.raft.Nodes[follower].Status().Leader.ID != "" {
		if time.Now().After(deadline) {
			t.Fatal("isolated follower still knows a leader after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := &recorder{}
	f := newFunctions(nodesClient(t, rec, g.urls[follower], g.urls[leader]), fixedClock, nil)
	out, err := f.invoke(t, "failover", fixture(t, "failover-signed.json"))
	var rc receipt
	decodeBody(t, mustHTTP(t, out, err, 200), &rc)
	if rc.Master != "10.0.2.30:3306" {
		t.Errorf("receipt = %+v", rc)
	}
	got := rec.attempts()
	if len(got) != 2 || got[0].status != 503 || got[0].node != g.urls[follower] || got[1].status != 200 {
		t.Fatalf("attempts = %+v, want 503 from the isolated follower, then 200", got)
	}
	if got[0].key == "" || got[0].key != got[1].key {
		t.Errorf("keys %q, %q; want one derived key on both attempts", got[0].key, got[1].key)
	}
}

// TestFailoverWaitAll: ?wait=all is passed on, so the receipt says what
// every other node did.
func TestFailoverWaitAll(t *testing.T) {
	g := newGroup(t, groupOptions{})
	rec := &recorder{}
	f := newFunctions(nodesClient(t, rec, g.urls...), fixedClock, nil)
	out, err := f.invoke(t, "failover", editFixture(t, "failover-json.json", func(ev map[string]any) {
		ev["rawQueryString"] = "wait=all&other=1"
	}))
	var rc map[string]json.RawMessage
	decodeBody(t, mustHTTP(t, out, err, 200), &rc)
	if got := rec.attempts(); len(got) == 0 || got[0].path != "/v1/failover?wait=all" {
		t.Errorf("attempts = %+v, want POST /v1/failover?wait=all", got)
	}
	if _, ok := rc["nodes"]; !ok {
		t.Errorf("receipt %v has no nodes", rc)
	}
}
