package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/masterkv/masterkv/internal/logging"
	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// retainSnapshots is how many snapshots the file store keeps.
const retainSnapshots = 3

// lockTimeout is how long Open waits for raft.db's file lock.
const lockTimeout = 2 * time.Second

// Open starts a node with durable storage under dataDir (raft.db for the log
// and stable store, snapshots/ for snapshots) and a TCP transport bound to
// raftAddr that other nodes dial at advertiseAddr. With raftTLS the
// transport runs over mutual TLS (see tlsStream); nil is plain TCP.
func Open(cfg Config, dataDir, raftAddr, advertiseAddr string, raftTLS *tlsfiles.Store) (*Node, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	hl := logging.HCLog(cfg.Logger.With("component", "raft"))
	// Another process holding raft.db's lock would make bbolt wait for it
	// forever, silently; a second node on the same directory (plain `make`
	// beside a running `make run`) must fail fast instead.
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dataDir, "raft.db"), BoltOptions: &bbolt.Options{Timeout: lockTimeout},
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("node: data dir %s is in use by another process (raft.db stayed locked for %s); stop it or set another MASTERKV_DATA_DIR", dataDir, lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("node: open raft.db: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, retainSnapshots, hl)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("node: snapshot store: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", advertiseAddr)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("node: raft advertise address %q: %w", advertiseAddr, err)
	}
	trans, err := newTransport(raftAddr, adv, raftTLS, hl, cfg.Logger)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("node: raft transport on %s: %w", raftAddr, err)
	}
	n, err := New(cfg, Deps{
		Transport: trans, Logs: bolt, Stable: bolt, Snaps: snaps,
		Closers: []io.Closer{trans, bolt},
	})
	if err != nil {
		trans.Close()
		bolt.Close()
		return nil, err
	}
	return n, nil
}

// newTransport is raft's NetworkTransport on TCP, or on mutual TLS when
// files is set.
func newTransport(bind string, adv *net.TCPAddr, files *tlsfiles.Store, hl hclog.Logger, log *slog.Logger) (*raft.NetworkTransport, error) {
	if files == nil {
		return raft.NewTCPTransportWithLogger(bind, adv, 3, 10*time.Second, hl)
	}
	stream, err := newTLSStream(bind, adv, files, log.With("component", "raft"))
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl,
	}), nil
}
