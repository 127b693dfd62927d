package front_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/orchestratorapi"
	"github.com/masterkv/masterkv/raftnode/httpapi"
)

// scheduleInput encodes a Scheduler input.
func scheduleInput(t *testing.T, in populate.Input) []byte {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPopulateBatches: 2,000 masters go in several bodies, each under the
// nodes' 64 KiB limit, each under its own key, and all commit.
func TestPopulateBatches(t *testing.T) {
	g := newGroup(t, groupOptions{})
	rec := &recorder{}
	f := newFunctions(nodesClient(t, rec, g.urls...), fixedClock, nil)
	in := populate.Input{ScheduleARN: "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/p", ScheduledTime: "2025-03-01T12:01:00Z"}
	const n = 2000
	for i := range n {
		in.Masters = append(in.Masters, populate.Master{
			Cluster: fmt.Sprintf("cluster-%04d-with-a-longer-alias", i), Host: fmt.Sprintf("db-%04d.mysql.eu-west-1.example.internal", i), Port: 3306,
			IPv4: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1),
		})
	}
	out, err := f.invoke(t, "populate", scheduleInput(t, in))
	mustCounts(t, out, err, populate.Counts{Checked: n, Submitted: n})
	got := rec.attempts()
	keys := map[string]bool{}
	for _, a := range got {
		if a.status != 200 || a.path != "/v1/populate" || a.body > httpapi.MaxBodyBytes || a.body > populate.MaxBatchBytes {
			t.Errorf("attempt %+v, want 200 on /v1/populate with a body of at most %d bytes", a, populate.MaxBatchBytes)
		}
		keys[a.key] = true
	}
	if len(got) < 3 || len(keys) != len(got) {
		t.Errorf("%d requests with %d distinct keys, want several batches, each with its own key", len(got), len(keys))
	}
	g.waitRecord(t, "cluster-1999-with-a-longer-alias", "db-1999.mysql.eu-west-1.example.internal:3306")
}

// TestPopulateLeavesOutBadMasters: invalid, duplicate and node-refused
// masters are left out and reported; the others are committed.
func TestPopulateLeavesOutBadMasters(t *testing.T) {
	g := newGroup(t, groupOptions{})
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, nil)
	in := populate.Input{ScheduleARN: "arn:p", ScheduledTime: "2025-03-01T12:02:00Z", Masters: []populate.Master{
		{Cluster: "good-1", Host: "10.0.7.1", Port: 3306},
		{Cluster: "bad/alias", Host: "10.0.7.2", Port: 3306},
		{Cluster: "good-2", Host: "10.0.7.3", Port: 3306},
		{Cluster: "good-1", Host: "10.0.7.9", Port: 3306},
		{Cluster: "no-port", Host: "10.0.7.4"},
		{Cluster: "loopback", Host: "127.0.0.1", Port: 3306}, // the nodes refuse it
	}}
	_, err := f.invoke(t, "populate", scheduleInput(t, in))
	if err == nil {
		t.Fatal("populate succeeded, want an error naming the left-out masters")
	}
	for _, want := range []string{`"bad/alias"`, `"good-1"`, "listed twice", `"no-port"`, `"loopback" refused by the nodes`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	g.waitRecord(t, "good-1", "10.0.7.1:3306")
	g.waitRecord(t, "good-2", "10.0.7.3:3306")
	g.assertNoRecord(t, "loopback")
	g.assertNoRecord(t, "no-port")
}

// TestPopulateOrchestratorPartial: a cluster whose master orchestrator
// cannot report fails the run after the others were committed.
func TestPopulateOrchestratorPartial(t *testing.T) {
	g := newGroup(t, groupOptions{})
	orch := orchestrator(t, fakeOrchestrator(t,
		[]map[string]string{{"ClusterName": "db-1:3306", "ClusterAlias": "ok"}, {"ClusterName": "db-2:3306", "ClusterAlias": "broken"}},
		map[string]*orchestratorapi.Master{"ok": {Host: "10.0.8.1", Port: 3306}, "broken": nil}))
	f := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, orch)
	_, err := f.invoke(t, "populate", fixture(t, "populate-scheduled-event.json"))
	var ce *orchestratorapi.ClusterError
	if !errors.As(err, &ce) || ce.Cluster != "broken" {
		t.Fatalf("populate = %v, want a ClusterError for broken", err)
	}
	g.waitRecord(t, "ok", "10.0.8.1:3306")

	down := newFunctions(nodesClient(t, nil, g.urls...), fixedClock, orchestrator(t, deadURL(t)))
	if _, err := down.invoke(t, "populate", fixture(t, "populate-scheduled-event.json")); err == nil || !strings.Contains(err.Error(), "clusters-info") {
		t.Errorf("populate with orchestrator down = %v, want an error about clusters-info", err)
	}
}

// TestPopulateRefusesEvents: events that are not schedules, or that leave
// the masters' source undetermined, fail without touching the nodes.
func TestPopulateRefusesEvents(t *testing.T) {
	rec := &recorder{}
	f := newFunctions(nodesClient(t, rec, deadURL(t)), fixedClock, nil)
	tests := []struct {
		name    string
		payload []byte
		want    error
	}{
		{"classic event without orchestrator", fixture(t, "populate-scheduled-event.json"), populate.ErrNoSource},
		{"input without masters or orchestrator", []byte(`{"schedule_arn":"arn:p","scheduled_time":"2025-03-01T12:00:00Z"}`), populate.ErrNoSource},
		{"another EventBridge event", editFixture(t, "populate-scheduled-event.json", func(ev map[string]any) {
			ev["detail-type"] = "EC2 Instance State-change Notification"
		}), populate.ErrUnsupportedEvent},
		{"unknown input field", []byte(`{"mastres":[]}`), populate.ErrUnsupportedEvent},
		{"not an object", []byte(`[1,2]`), populate.ErrUnsupportedEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.invoke(t, "populate", tc.payload)
			// The runtime reports handler errors by message only.
			if err == nil || !strings.Contains(err.Error(), tc.want.Error()) {
				t.Errorf("populate = %v, want %v", err, tc.want)
			}
		})
	}
	if got := rec.attempts(); len(got) != 0 {
		t.Errorf("nodes were called: %+v", got)
	}
}
