// Command raftnode runs one member of masterkv's raft group: it commits
// master changes and serves the HTTP API. Configuration comes from MASTERKV_*
// environment variables (see README.md).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/tlsfiles"
	"github.com/masterkv/masterkv/raftnode/config"
	"github.com/masterkv/masterkv/raftnode/crossdc"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/metrics"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/publish"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "raftnode:", err)
		os.Exit(1)
	}
}

func newLogger(c config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// run reads top to bottom: configuration, the raft node, TLS, the stores'
// publishers, the HTTP API, then serving until a signal or a failed server.
func run() error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	m := metrics.New()
	raftTLS, err := cfg.RaftTLS()
	if err != nil {
		return err
	}
	if raftTLS == nil && !cfg.Dev {
		log.Warn("the raft transport runs on plain TCP: anyone who reaches MASTERKV_RAFT_ADDR can rewrite the group; set MASTERKV_RAFT_TLS_CERT_FILE, _KEY_FILE and _CA_FILE (docs/TLS.md)")
	}
	n, err := openNode(cfg, m, log, raftTLS)
	if err != nil {
		return err
	}
	defer n.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serverTLS, err := cfg.HTTPServerTLS()
	if err != nil {
		return err
	}
	forwardTLS, err := cfg.ForwardTLS()
	if err != nil {
		return err
	}
	reloadTLS(ctx, nonNil(raftTLS, serverTLS, forwardTLS), cfg.ReloadInterval, log)
	layout := discovery.NewLayout(cfg.KVClusterMasterPrefix, cfg.WriteEpochKey)
	pubs, crossDC, closeStores, err := startPublishers(ctx, cfg, n, layout, m, log)
	if err != nil {
		return err
	}
	defer closeStores()
	m.Register(metrics.NewStatusCollector(n, storeStatuses(pubs, crossDC)))
	api := newAPI(cfg, n, layout, pubs, crossDC, m, forwardTLS, log)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv, scheme := newServer(cfg, api, serverTLS, log)
	peers, _ := cfg.PeerList() // validated by Load
	log.Info("raftnode started", "node", cfg.NodeID, "raft_addr", cfg.RaftAddr, "http_addr", ln.Addr().String(),
		"data_dir", cfg.DataDir, "peers", len(peers), "auth", len(cfg.APITokens) > 0, "raft_tls", raftTLS != nil, "http_scheme", scheme)
	if len(cfg.APITokens) == 0 {
		log.Warn("dev mode: the API runs without authentication; set MASTERKV_API_TOKENS for anything but local testing")
	}
	return serve(ctx, cfg, n, srv, ln, scheme, log)
}

// openNode opens this node's raft member.
func openNode(cfg config.Config, m *metrics.Metrics, log *slog.Logger, raftTLS *tlsfiles.Store) (*node.Node, error) {
	peers, _ := cfg.PeerList() // validated by Load
	return node.Open(node.Config{
		ID: cfg.NodeID, Peers: peers, Bootstrap: cfg.ShouldBootstrap(),
		SnapshotDelay: cfg.SnapshotDelay, ApplyTimeout: cfg.ApplyTimeout,
		OnPropose: m.ObserveCommit, Logger: log,
	}, cfg.DataDir, cfg.RaftAddr, cfg.RaftAdvertise(), raftTLS)
}

// nonNil returns the TLS file stores that are set.
func nonNil(stores ...*tlsfiles.Store) []*tlsfiles.Store {
	var out []*tlsfiles.Store
	for _, s := range stores {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// storeStatuses returns the status of every store this node publishes to,
// for the metrics: its own publishers and the other datacenters'.
func storeStatuses(pubs []*publish.Publisher, crossDC *crossdc.Distributor) func() []publish.Status {
	return func() []publish.Status {
		var out []publish.Status
		for _, p := range pubs {
			out = append(out, p.Status())
		}
		if crossDC != nil {
			for _, d := range crossDC.Status().Datacenters {
				if !d.Local { // the node's own publisher, counted above
					out = append(out, d.Status)
				}
			}
		}
		return out
	}
}

// newAPI builds the HTTP API from the configuration and the node's parts.
func newAPI(cfg config.Config, n *node.Node, layout discovery.Layout, pubs []*publish.Publisher, crossDC *crossdc.Distributor, m *metrics.Metrics, forwardTLS *tlsfiles.Store, log *slog.Logger) *httpapi.Server {
	apiPubs := make([]httpapi.Publisher, len(pubs))
	for i, p := range pubs {
		apiPubs[i] = p
	}
	var resolver master.Resolver
	if cfg.ResolveIPs {
		resolver = net.DefaultResolver
	}
	return httpapi.New(n, n.FSM(), httpapi.Options{
		Layout:         layout,
		Tokens:         cfg.APITokens,
		Resolver:       resolver,
		AllowLoopback:  cfg.AllowLoopback,
		LeaderWait:     cfg.LeaderWait,
		ApplyTimeout:   cfg.ApplyTimeout,
		Publishers:     apiPubs,
		Metrics:        m.Handler(),
		CrossDC:        crossDCOrNil(crossDC),
		ReceiptTimeout: cfg.ReceiptTimeout,
		WaitAllTimeout: cfg.WaitAllTimeout,
		Client:         nodeClient(forwardTLS),
		Logger:         log,
	})
}

// newServer returns the HTTP server for api and its scheme, https when
// serverTLS is set.
func newServer(cfg config.Config, api *httpapi.Server, serverTLS *tlsfiles.Store, log *slog.Logger) (*http.Server, string) {
	// A write may wait for an election (LEADER_WAIT), a commit and the
	// barrier after it (APPLY_TIMEOUT each), the leader's stores
	// (RECEIPT_TIMEOUT) and, with ?wait=all, the other nodes
	// (WAIT_ALL_TIMEOUT); the write timeout leaves room for all of them.
	srv := &http.Server{
		Handler: api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: api.MaxRequestTime() + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
	}
	if serverTLS == nil {
		return srv, "http"
	}
	auth := tls.NoClientCert
	if cfg.HTTPClientCAFile != "" {
		auth = tls.RequireAndVerifyClientCert
	}
	srv.TLSConfig = serverTLS.ServerConfig(auth)
	// net/http logs each refused handshake (peer address and reason).
	srv.ErrorLog = slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelWarn)
	return srv, "https"
}

// serve runs srv on ln until ctx ends (a signal) or the server fails, then
// shuts it down. Once the node is ready it says so (and, in dev mode,
// prints the quickstart).
func serve(ctx context.Context, cfg config.Config, n *node.Node, srv *http.Server, ln net.Listener, scheme string, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() {
		if scheme == "https" {
			errc <- srv.ServeTLS(ln, "", "") // the certificate comes from TLSConfig
			return
		}
		errc <- srv.Serve(ln)
	}()
	go func() {
		// The curl lines are printed only once a write would commit: right
		// after start the first election has not ended yet.
		if waitReady(ctx, n) {
			log.Info("raftnode ready", "node", cfg.NodeID, "leader", n.Status().Leader.ID)
			if cfg.Dev {
				printQuickstart(scheme, ln.Addr().String(), cfg.APITokens)
			}
		}
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http serve: %w", err)
		}
	case <-ctx.Done():
		log.Info("shutting down")
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shCtx)
	return nil
}

// waitReady polls n until it is ready (leader known, caught up), as
// /readyz reports it, and returns false if ctx ends first.
func waitReady(ctx context.Context, n *node.Node) bool {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n.Ready() != nil {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// printQuickstart shows the two curl lines a new user needs.
func printQuickstart(scheme, addr string, tokens []string) {
	auth := ""
	if len(tokens) > 0 {
		auth = ` -H "Authorization: Bearer $MASTERKV_API_TOKEN"`
	}
	if strings.HasPrefix(addr, "[::]") || strings.HasPrefix(addr, "0.0.0.0") {
		_, port, _ := net.SplitHostPort(addr)
		addr = "127.0.0.1:" + port
	}
	fmt.Printf(`
masterkv dev node on %[3]s://%[1]s (internal store only)

  # publish a new master for cluster "mycluster"
  curl -s%[2]s -d cluster=mycluster -d host=10.0.0.12 -d port=3306 %[3]s://%[1]s/v1/failover

  # read what is committed
  curl -s%[2]s %[3]s://%[1]s/v1/masters

`, addr, auth, scheme)
}

// nodeClient is the client that forwards writes to the leader and polls the
// other nodes: over TLS with files when set, plain net/http otherwise.
func nodeClient(files *tlsfiles.Store) *http.Client {
	if files == nil {
		return &http.Client{}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return files.DialContext(ctx, d, network, addr)
	}
	return &http.Client{Transport: t}
}

// crossDCStatus shows the distributor's status in /v1/status.
type crossDCStatus struct{ d *crossdc.Distributor }

func (s crossDCStatus) Status() any { return s.d.Status() }

// crossDCOrNil keeps a nil *crossdc.Distributor out of the interface.
func crossDCOrNil(d *crossdc.Distributor) httpapi.CrossDC {
	if d == nil {
		return nil
	}
	return crossDCStatus{d}
}
