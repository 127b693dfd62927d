package node_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/tlsfiles"
	"github.com/masterkv/masterkv/internal/tlsfiles/tlstest"
	"github.com/masterkv/masterkv/raftnode/node"
)

// TestRaftTransportMutualTLS runs two nodes on raft over mutual TLS, then
// speaks raft's own wire protocol (hashicorp/raft's NetworkTransport as a
// client) to the leader's raft port without a valid certificate: plain TCP,
// TLS without a client certificate, a certificate from another CA, and an
// API client's certificate (clientAuth only) from the group's CA. Each is
// refused at the handshake and the group does not move.
func TestRaftTransportMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "masterkv group"), tlstest.NewCA(t, "another group")
	caPath := ca.WriteCA(t, dir, "ca.crt")
	addrs := []string{freeLoopback(t), freeLoopback(t)}
	peers := []node.Peer{{ID: "n1", RaftAddr: addrs[0]}, {ID: "n2", RaftAddr: addrs[1]}}
	var nodes []*node.Node
	for i, p := range peers {
		cert, key := ca.Issue(t, p.ID, "127.0.0.1").Write(t, dir, p.ID)
		files, err := tlsfiles.Load(tlsfiles.Files{Cert: cert, Key: key, CA: caPath})
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(node.Config{ID: p.ID, Peers: peers, Bootstrap: i == 0, Logger: slog.New(slog.DiscardHandler)},
			filepath.Join(dir, p.ID), p.RaftAddr, p.RaftAddr, files)
		if err != nil {
			t.Fatalf("open %s: %v", p.ID, err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	leader := waitTLSLeader(t, nodes)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := leader.Propose(ctx, failover("tls-1", "c1", "db1", 3306, "", 0)); err != nil {
		t.Fatalf("propose over mutual TLS: %v", err)
	}
	for _, n := range nodes {
		waitFor(t, 10*time.Second, n.ID()+" to apply c1", func() bool { _, ok := n.FSM().Record("c1"); return ok })
	}

	before := leader.Status()
	target := raft.ServerAddress(before.Leader.RaftAddr)
	strangerCert := other.Issue(t, "n1", "127.0.0.1")
	stranger, err := tls.X509KeyPair(strangerCert.CertPEM, strangerCert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	apiClientCert := ca.IssueClient(t, "masterkv-lambda")
	apiClient, err := tls.X509KeyPair(apiClientCert.CertPEM, apiClientCert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	intruders := []struct {
		name string
		tls  *tls.Config // nil: plain TCP
	}{
		{"plain TCP", nil},
		{"TLS without a client certificate", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}},
		{"client certificate from another CA", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{stranger}}},
		// The group's CA signed it, for the HTTP API: not a node.
		{"API client certificate", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{apiClient}}},
	}
	for _, in := range intruders {
		t.Run(in.name, func(t *testing.T) {
			trans := intruderTransport(t, in.tls)
			hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")}
			var vote raft.RequestVoteResponse
			err := trans.RequestVote("n1", target, &raft.RequestVoteRequest{
				RPCHeader: hdr, Term: before.Term + 100, LastLogIndex: 1 << 40, LastLogTerm: before.Term + 100,
			}, &vote)
			if err == nil {
				t.Errorf("RequestVote: err = nil (answered term %d, granted %v), want a refused handshake", vote.Term, vote.Granted)
			}
			var ae raft.AppendEntriesResponse
			err = trans.AppendEntries("n1", target, &raft.AppendEntriesRequest{
				RPCHeader: hdr, Term: before.Term + 100, PrevLogEntry: before.LastIndex, PrevLogTerm: before.Term,
				LeaderCommitIndex: before.CommitIndex,
			}, &ae)
			if err == nil {
				t.Errorf("AppendEntries: err = nil (answered term %d, success %v), want a refused handshake", ae.Term, ae.Success)
			}
			after := leader.Status()
			if after.Term != before.Term || after.State != before.State || after.LastIndex != before.LastIndex {
				t.Errorf("after the RPCs: term %d, state %s, last index %d; want term %d, state %s, last index %d unchanged",
					after.Term, after.State, after.LastIndex, before.Term, before.State, before.LastIndex)
			}
		})
	}
}

// waitTLSLeader waits until one of nodes is leader and returns it.
func waitTLSLeader(t *testing.T, nodes []*node.Node) *node.Node {
	t.Helper()
	var leader *node.Node
	waitFor(t, 15*time.Second, "a leader over mutual TLS", func() bool {
		for _, n := range nodes {
			if n.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// intruderTransport is a raft NetworkTransport that dials plain TCP (cfg
// nil) or TLS with cfg.
func intruderTransport(t *testing.T, cfg *tls.Config) *raft.NetworkTransport {
	t.Helper()
	if cfg == nil {
		trans, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { trans.Close() })
		return trans
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &tlsDialer{Listener: ln, cfg: cfg}, MaxPool: 1, Timeout: 2 * time.Second,
	})
	t.Cleanup(func() { trans.Close() })
	return trans
}

// tlsDialer is a client-only raft.StreamLayer over TLS.
type tlsDialer struct {
	net.Listener
	cfg *tls.Config
}

func (d *tlsDialer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), d.cfg)
}

// freeLoopback returns a loopback address whose port was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
