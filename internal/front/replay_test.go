package front_test

import (
	"net/http"
	"testing"
)

// TestSignedRequestReplays is issue 10 item 7: the signature covered only
// its timestamp and the body, so a signed failover captured on the wire
// and replayed inside the 5-minute window with a fresh Idempotency-Key
// committed again (it rolled a cluster back over a failover made in
// between), and the same signature was accepted by the submit function.
// Every replay of a captured request must commit nothing new: a plain
// replay is a duplicate, one with another key or at another function is
// refused.
func TestSignedRequestReplays(t *testing.T) {
	g := newGroup(t, groupOptions{})
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, nil)
	captured := fixture(t, "failover-signed.json")
	out, err := f.invoke(t, "failover", captured)
	mustHTTP(t, out, err, http.StatusOK)
	g.waitRecord(t, "payments", "10.0.2.30:3306")
	g.seed(t, "payments", "10.0.2.31", 3306) // a legitimate failover since

	id, idx := g.lastIndex(t)
	out, err = f.invoke(t, "failover", captured)
	var rc struct{ Duplicate bool }
	decodeBody(t, mustHTTP(t, out, err, http.StatusOK), &rc)
	if !rc.Duplicate {
		t.Errorf("a plain replay answered %s, want a duplicate", out)
	}
	for _, tc := range []struct {
		name, fn string
		payload  []byte
	}{
		{"fresh idempotency key", "failover", editFixture(t, "failover-signed.json", func(ev map[string]any) {
			headersOf(ev)["idempotency-key"] = "replayed-with-a-new-key"
		})},
		{"at the submit function", "submit", editFixture(t, "failover-signed.json", func(ev map[string]any) {
			ev["rawPath"] = "/api/submit-masters-to-kv-stores"
			ev["requestContext"].(map[string]any)["http"].(map[string]any)["path"] = "/api/submit-masters-to-kv-stores"
		})},
		{"at the submit function for an alias", "submit", editFixture(t, "failover-signed.json", func(ev map[string]any) {
			ev["rawPath"] = "/api/submit-masters-to-kv-stores/payments"
			ev["requestContext"].(map[string]any)["http"].(map[string]any)["path"] = "/api/submit-masters-to-kv-stores/payments"
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := f.invoke(t, tc.fn, tc.payload)
			mustHTTP(t, out, err, http.StatusUnauthorized)
		})
	}
	g.assertNoNewEntry(t, id, idx)
	g.waitRecord(t, "payments", "10.0.2.31:3306")
}
