package front_test

import (
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/front/populate"
)

// TestFailoverRefusesZoneInjection (issue 10 item 1): a host carrying an
// IPv6 zone, here with a config line in it, is refused through the failover
// function and nothing is committed.
func TestFailoverRefusesZoneInjection(t *testing.T) {
	g := newGroup(t, groupOptions{})
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, nil)
	id, idx := g.lastIndex(t)
	for name, body := range map[string]string{
		"json": `{"cluster":"hp","host":"fe80::1%x\nserver evil 203.0.113.66:3306 check","port":3306}`,
		"form": "cluster=hp&host=fe80::1%25x%0Aserver+evil+203.0.113.66:3306+check&port=3306",
	} {
		t.Run(name, func(t *testing.T) {
			out, err := f.invoke(t, "failover", editFixture(t, "failover-json.json", func(ev map[string]any) {
				ev["body"] = body
				delete(headersOf(ev), "idempotency-key")
			}))
			a := mustHTTP(t, out, err, 400)
			var e map[string]string
			decodeBody(t, a, &e)
			if !strings.HasPrefix(e["error"], "host: ") || !strings.Contains(e["error"], "zone") {
				t.Errorf("error = %q, want it to name host and the zone rule", e["error"])
			}
		})
	}
	g.assertNoEntryAndRecords(t, id, idx, "hp")
}

// TestFailoverRefusesAmbiguousJSON (issue 10 item 4): a body that readers
// could take two ways (a repeated key, a case variant) is refused through
// the failover function with the node's error naming the key, and nothing
// is committed.
func TestFailoverRefusesAmbiguousJSON(t *testing.T) {
	g := newGroup(t, groupOptions{})
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, nil)
	id, idx := g.lastIndex(t)
	for _, tt := range []struct{ name, body, want string }{
		{"duplicate key", `{"cluster":"amb","host":"10.0.0.1","port":3306,"host":"10.0.0.2"}`, "host: given more than once"},
		{"case-variant key", `{"cluster":"amb","host":"10.0.0.1","port":3306,"CLUSTER":"other"}`, `body: must be a JSON object with known fields: unknown field "CLUSTER"`},
		{"repeated form field", "cluster=amb&host=10.0.0.1&port=3306&host=10.0.0.2", "host: given more than once"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := f.invoke(t, "failover", editFixture(t, "failover-json.json", func(ev map[string]any) {
				ev["body"] = tt.body
				delete(headersOf(ev), "idempotency-key")
			}))
			a := mustHTTP(t, out, err, 400)
			var e map[string]string
			decodeBody(t, a, &e)
			if !strings.HasPrefix(e["error"], tt.want) {
				t.Errorf("error = %q, want prefix %q", e["error"], tt.want)
			}
		})
	}
	g.assertNoEntryAndRecords(t, id, idx, "amb", "other")
}

// TestPopulateLeavesOutHostileMasters (issue 10 items 1, 2): the populate
// function validates with the node's rules and leaves out a zoned host and
// an alias ZooKeeper cannot hold, before sending anything.
func TestPopulateLeavesOutHostileMasters(t *testing.T) {
	g := newGroup(t, groupOptions{})
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, nil)
	in := populate.Input{ScheduleARN: "arn:p", ScheduledTime: "2025-03-01T12:02:00Z", Masters: []populate.Master{
		{Cluster: "good", Host: "10.0.7.1", Port: 3306},
		{Cluster: "zoned", Host: "fe80::1%x\nserver evil 203.0.113.66:3306 check", Port: 3306},
		{Cluster: "private-\ue000", Host: "10.0.7.2", Port: 3306},
	}}
	_, err := f.invoke(t, "populate", scheduleInput(t, in))
	if err == nil {
		t.Fatal("populate succeeded, want an error naming the left-out masters")
	}
	for _, want := range []string{`"zoned" left out: host:`, `"private-\ue000" left out: cluster:`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	g.waitRecord(t, "good", "10.0.7.1:3306")
	g.assertNoRecord(t, "zoned")
	g.assertNoRecord(t, "private-\ue000")
}
