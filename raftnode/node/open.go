package node

import (
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

	"github.com/masterkv/masterkv/internal/logging"
	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// retainSnapshots is how many snapshots the file store keeps.
const retainSnapshots = 3

// Open starts a node with durable storage under dataDir (raft.db for the log
// and stable store, snapshots/ for snapshots) and a TCP transport bound to
// raftAddr that other nodes dial at advertiseAddr. With raftTLS the
// transport runs over mutual TLS (see tlsStream); nil is plain TCP.
func Open(cfg Config, dataDir, raftAddr, advertiseAddr string, raftTLS *tlsfiles.Store) (*Node, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	hl := logging.HCLog(cfg.Logger.With("component", "raft"))
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft.db")})
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
