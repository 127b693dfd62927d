package publish_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// keyedSubmitsPerDay is a day of the Lambda's scheduled submit at one a
// minute; each carries its own idempotency key.
const keyedSubmitsPerDay = 1440

// BenchmarkKeyedSubmitsDay runs a real single-node raftnode process on the
// internal store, loads 10,000 clusters, and sends a day of keyed submits
// of every cluster (1,440, each under its own Idempotency-Key, all within
// the id TTL, so the id table remembers every one). It then makes the node
// snapshot (a failover, MASTERKV_SNAPSHOT_DELAY later) and reports the
// node's peak RSS (VmHWM), its RSS at the end, the id table's size from
// /v1/status, and the snapshot's size on disk. Targets (issue 9 item 5):
// RSS under 100 MB, snapshot under 10 MB. Remembering each submit's whole
// result grew the snapshot by about 2 MB a submit. Run with -benchtime=1x.
func BenchmarkKeyedSubmitsDay(b *testing.B) {
	n := startRaftnode(b, "MASTERKV_SNAPSHOT_DELAY=100ms", "MASTERKV_DRIFT_CHECK_INTERVAL=0")
	n.populate(b, submitClusters)
	var took time.Duration
	for b.Loop() {
		t0 := time.Now()
		for i := range keyedSubmitsPerDay {
			n.keyedSubmit(b, fmt.Sprintf("lambda-submit-%d", i))
		}
		took = time.Since(t0)
	}
	fo := n.post(b, "/v1/failover", "application/json", []byte(`{"cluster":"c00000","host":"10.9.9.9","port":3306}`))
	var rc struct{ Epoch uint64 }
	if err := json.Unmarshal(fo, &rc); err != nil || rc.Epoch == 0 {
		b.Fatalf("failover answered %s: %v", fo, err)
	}
	var st struct {
		LastSnapshotIndex uint64 `json:"last_snapshot_index"`
		RememberedIDs     int    `json:"remembered_ids"`
		RememberedIDBytes int    `json:"remembered_id_bytes"`
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if err := n.getJSON("/v1/status", &st); err == nil && st.LastSnapshotIndex >= rc.Epoch {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("no snapshot at index %d within a minute (last %d)", rc.Epoch, st.LastSnapshotIndex)
		}
	}
	if st.RememberedIDs < keyedSubmitsPerDay {
		b.Fatalf("the node remembers %d ids, want the %d submits' keys", st.RememberedIDs, keyedSubmitsPerDay)
	}
	snap := newestSnapshot(b, n.dataDir)
	hwm, rss := n.procKB(b, "VmHWM"), n.procKB(b, "VmRSS")
	b.ReportMetric(took.Seconds()/keyedSubmitsPerDay*1000, "ms/submit")
	b.ReportMetric(float64(hwm)/1024, "peak-rss-MB")
	b.ReportMetric(float64(rss)/1024, "end-rss-MB")
	b.ReportMetric(float64(snap)/(1<<20), "snapshot-MB")
	b.ReportMetric(float64(st.RememberedIDBytes)/(1<<20), "id-table-MB")
	b.Logf("%d keyed submits of %d clusters: peak RSS %.1f MB (target 100), snapshot %.2f MB (target 10), %d ids in %.2f MB",
		keyedSubmitsPerDay, submitClusters, float64(hwm)/1024, float64(snap)/(1<<20), st.RememberedIDs, float64(st.RememberedIDBytes)/(1<<20))
}

// keyedSubmit sends a submit of every cluster under key and checks that it
// committed every cluster.
func (n *procNode) keyedSubmit(b *testing.B, key string) {
	b.Helper()
	req, err := http.NewRequest(http.MethodPost, n.url+"/api/submit-masters-to-kv-stores", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := n.http.Do(req)
	if err != nil {
		b.Fatalf("submit %s: %v", key, err)
	}
	defer resp.Body.Close()
	var res struct{ Code, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("submit %s: status %d, %v", key, resp.StatusCode, err)
	}
	if want := fmt.Sprintf("Submitted %d masters", submitClusters); res.Code != "OK" || res.Message != want {
		b.Fatalf("submit %s answered %s %q, want OK %q", key, res.Code, res.Message, want)
	}
}

// newestSnapshot returns the size of the newest raft snapshot's state in
// dataDir (raft's file store: snapshots/<term-index-ms>/state.bin).
func newestSnapshot(b *testing.B, dataDir string) int64 {
	b.Helper()
	states, err := filepath.Glob(filepath.Join(dataDir, "snapshots", "*", "state.bin"))
	if err != nil || len(states) == 0 {
		b.Fatalf("no snapshot in %s: %v", dataDir, err)
	}
	var newest os.FileInfo
	for _, p := range states {
		fi, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		if newest == nil || fi.ModTime().After(newest.ModTime()) {
			newest = fi
		}
	}
	return newest.Size()
}
