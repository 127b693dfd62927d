package node_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/raftnode/node"
)

// TestOpenDataDirInUse is issue 11 item 9: a second node started on a data
// directory in use (plain `make` next to a running `make run`) hung
// forever with no output, waiting for raft.db's file lock. It must fail
// within seconds, naming the directory.
func TestOpenDataDirInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeLoopback(t)
	cfg := node.Config{ID: "n1", Peers: []node.Peer{{ID: "n1", RaftAddr: addr}}, Bootstrap: true, Logger: slog.New(slog.DiscardHandler)}
	first, err := node.Open(cfg, dir, addr, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Close() })

	done := make(chan error, 1)
	go func() {
		second := freeLoopback(t)
		n, err := node.Open(cfg, dir, second, second, nil)
		if err == nil {
			n.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
			t.Errorf("second Open on %s = %v, want an error saying the directory is in use", dir, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("second Open on a data dir in use still waits after 15s")
	}
}
