package fsm_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// manyClusters returns a store holding n clusters (one populate without an
// id, at index 1) and the next free index.
func manyClusters(t testing.TB, n int) (*fsm.FSM, uint64) {
	t.Helper()
	entries := make([]command.Entry, n)
	for i := range entries {
		entries[i] = command.Entry{
			Cluster: fmt.Sprintf("cluster-%05d", i),
			Master:  master.Master{Host: fmt.Sprintf("db-%05d.example.com", i), Port: 3306, IPv4: "10.1.2.3"},
		}
	}
	f := fsm.New()
	apply(t, f, 1, populate("", t0, entries...))
	return f, 2
}

// idsSection returns the bytes of the snapshot's remembered ids.
func idsSection(t *testing.T, snap []byte) int {
	t.Helper()
	var st struct {
		IDs json.RawMessage `json:"ids"`
	}
	if err := json.Unmarshal(snap, &st); err != nil {
		t.Fatalf("snapshot is not JSON: %v", err)
	}
	return len(st.IDs)
}

// TestKeyedSubmitsRememberSummaries: a keyed submit of every cluster is
// remembered as a summary, whatever the number of clusters; its whole
// result would add the size of the store to the id table and to every
// snapshot, once per key.
func TestKeyedSubmitsRememberSummaries(t *testing.T) {
	const clusters, submits = 1000, 20
	f, index := manyClusters(t, clusters)
	for i := range submits {
		at := t0 + int64(i+1)*fsm.MaxClockStep.Milliseconds()
		if res := apply(t, f, index, submit(fmt.Sprintf("lambda-submit-%d", i), at, "")); res.Error() != nil || len(res.Records) != clusters {
			t.Fatalf("submit %d = %d records, error %v; want %d records", i, len(res.Records), res.Error(), clusters)
		}
		index++
	}
	// A summary is well under 1 KiB; the records of one submit are ~200 KB.
	if got, limit := idsSection(t, persist(t, f)), submits*1024; got > limit {
		t.Errorf("snapshot ids after %d keyed submits of %d clusters = %d bytes, want at most %d (a summary each)", submits, clusters, got, limit)
	}
}

// keyedFailovers applies n keyed failovers of cluster "a", ids key-0 to
// key-(n-1), a second apart, from index 1.
func keyedFailovers(t *testing.T, f *fsm.FSM, n int) {
	t.Helper()
	for i := range n {
		m := master.Master{Host: fmt.Sprintf("db%d.example.com", i), Port: 3306}
		if res := apply(t, f, uint64(i+1), failover(fmt.Sprintf("key-%d", i), t0+int64(i)*1000, "a", m, "")); res.Error() != nil {
			t.Fatalf("failover %d: %v", i, res.Error())
		}
	}
}

// remembered reports which of key-0 to key-(n-1) a retry would find.
func remembered(t *testing.T, f *fsm.FSM, n int) []bool {
	t.Helper()
	out := make([]bool, n)
	for i := range n {
		m := master.Master{Host: fmt.Sprintf("db%d.example.com", i), Port: 3306}
		res, ok, err := f.Lookup(failover(fmt.Sprintf("key-%d", i), t0+int64(n)*1000, "a", m, ""))
		if err != nil {
			t.Fatalf("Lookup(key-%d): %v", i, err)
		}
		if ok && (res.Index != uint64(i+1) || len(res.Records) != 1 || res.Records[0].Master != m) {
			t.Errorf("Lookup(key-%d) = %+v, want index %d with its one record", i, res, i+1)
		}
		out[i] = ok
	}
	return out
}

// TestIDTableForgetsOldestPastMaxEntries: with more keys than the table
// holds, the oldest go first, before their TTL; the rest keep answering
// their retries with the first result.
func TestIDTableForgetsOldestPastMaxEntries(t *testing.T) {
	f := fsm.New()
	f.SetIDLimits(3, fsm.MaxIDBytes)
	keyedFailovers(t, f, 5)
	if got, want := remembered(t, f, 5), []bool{false, false, true, true, true}; !slices.Equal(got, want) {
		t.Errorf("remembered keys = %v, want %v (the three newest)", got, want)
	}
	if n, _ := f.IDStats(); n != 3 {
		t.Errorf("IDStats() entries = %d, want 3", n)
	}
}

// TestIDTableForgetsOldestPastMaxBytes: the byte bound works the same way,
// and the table's bytes never pass it.
func TestIDTableForgetsOldestPastMaxBytes(t *testing.T) {
	probe := fsm.New()
	keyedFailovers(t, probe, 1)
	_, one := probe.IDStats()
	f := fsm.New()
	f.SetIDLimits(fsm.MaxIDs, 2*one+one/2) // two entries fit, three do not
	keyedFailovers(t, f, 5)
	if got, want := remembered(t, f, 5), []bool{false, false, false, true, true}; !slices.Equal(got, want) {
		t.Errorf("remembered keys = %v, want %v (the two newest)", got, want)
	}
	if n, b := f.IDStats(); n != 2 || b > 2*one+one/2 {
		t.Errorf("IDStats() = %d entries, %d bytes; want 2 entries within %d bytes", n, b, 2*one+one/2)
	}
}

// TestIDTableRestoredKeepsTheSameKeys: a node restored from a snapshot
// forgets exactly what a node that applied the log forgets, at the same
// entries after it.
func TestIDTableRestoredKeepsTheSameKeys(t *testing.T) {
	src := fsm.New()
	src.SetIDLimits(3, fsm.MaxIDBytes)
	keyedFailovers(t, src, 4)
	dst := fsm.New()
	dst.SetIDLimits(3, fsm.MaxIDBytes)
	restore(t, dst, persist(t, src))
	for _, f := range []*fsm.FSM{src, dst} {
		m := master.Master{Host: "db9.example.com", Port: 3306}
		apply(t, f, 5, failover("key-9", t0+9000, "a", m, ""))
	}
	if got, want := remembered(t, dst, 4), remembered(t, src, 4); !slices.Equal(got, want) {
		t.Errorf("restored node remembers %v, the node that applied the log %v", got, want)
	}
	sn, sb := src.IDStats()
	dn, db := dst.IDStats()
	if sn != dn || sb != db {
		t.Errorf("IDStats: restored %d entries %d bytes, applied %d entries %d bytes", dn, db, sn, sb)
	}
}

// TestRestoreSummarizesWholeResults restores a snapshot written by a
// release that remembered whole results (every record, no count or
// epoch): the restored table keeps the summary, and a retry still gets
// the first submit's count and epoch.
func TestRestoreSummarizesWholeResults(t *testing.T) {
	const clusters = 50
	src, index := manyClusters(t, clusters)
	first := apply(t, src, index, submit("old-submit", t0+1000, ""))
	var st map[string]any
	if err := json.Unmarshal(persist(t, src), &st); err != nil {
		t.Fatal(err)
	}
	// Make the remembered result what an older release wrote.
	old := st["ids"].([]any)[0].(map[string]any)["result"].(map[string]any)
	old["records"] = st["records"]
	for _, r := range old["records"].([]any) {
		r.(map[string]any)["epoch"] = float64(first.Epoch)
	}
	delete(old, "count")
	delete(old, "epoch")
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	dst := fsm.New()
	restore(t, dst, b)
	res, ok, err := dst.Lookup(submit("old-submit", t0+2000, ""))
	if !ok || err != nil {
		t.Fatalf("Lookup(old-submit) = %v, %v; want the remembered result", ok, err)
	}
	if res.Count != clusters || res.Epoch != first.Epoch || res.Index != first.Index || len(res.Records) != 0 {
		t.Errorf("Lookup(old-submit) = index %d, count %d, epoch %d, %d records; want index %d, count %d, epoch %d, no records",
			res.Index, res.Count, res.Epoch, len(res.Records), first.Index, clusters, first.Epoch)
	}
	if _, bytes := dst.IDStats(); bytes > 1024 {
		t.Errorf("restored id table = %d bytes, want a summary (under 1 KiB)", bytes)
	}
}
