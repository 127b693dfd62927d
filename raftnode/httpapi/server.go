// Package httpapi serves masterkv's HTTP API on every node: failover,
// populate and orchestrator-compatible submit writes (forwarded to the leader
// by followers), master reads, status and health.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
)

// Node is the raft member the API writes through.
type Node interface {
	ID() string
	Propose(ctx context.Context, c command.Command) (fsm.Result, error)
	LeaderPeer(ctx context.Context) (node.Peer, error)
	// NextLeader waits for a known leader whose id is not prev.
	NextLeader(ctx context.Context, prev string) (node.Peer, error)
	// Ready is nil once a leader is known and this node caught up.
	Ready() error
	Status() node.Status
	// CaughtUp is false while a restarted node has applied less than the
	// log it started with: its records may be older than committed state.
	CaughtUp() bool
}

// CrossDC reports the leader's cross-datacenter distribution. Its status
// is shown as given under "cross_datacenter" in /v1/status, so this
// package needs neither the distributor nor the Consul client behind it.
type CrossDC interface {
	Status() any
}

// Masters reads the FSM's records.
type Masters interface {
	Record(alias string) (fsm.Record, bool)
	Records() []fsm.Record
}

var (
	_ Node    = (*node.Node)(nil)
	_ Masters = (*fsm.FSM)(nil)
)

// Options configure the API.
type Options struct {
	Layout discovery.Layout
	// Tokens are the accepted bearer tokens; none means no auth (dev mode).
	Tokens []string
	// Resolver completes ipv4/ipv6 from the host; nil disables resolution.
	Resolver      master.Resolver
	AllowLoopback bool
	// ResolveBudget bounds all the DNS lookups of one request (a populate
	// batch resolves many names); names not reached in time are committed
	// without addresses, as names that do not resolve are. Default 5 s, so
	// that a populate answers well within the Lambda node client's 12 s.
	ResolveBudget time.Duration
	// LeaderWait is how long a follower waits for a leader to be elected
	// before answering 503.
	LeaderWait time.Duration
	// Client forwards writes to the leader and polls the other nodes for
	// ?wait=all. Its Timeout does not bound a forward: each forward takes
	// its deadline from the leader's own budget (see forwardBudget), so
	// that a write the leader is still allowed to finish is never reported
	// as failed by the follower that relayed it.
	Client *http.Client
	// ApplyTimeout is the node's (node.Config.ApplyTimeout): part of the
	// leader's budget for a write.
	ApplyTimeout time.Duration
	// Publishers are this node's external stores, for receipts and status.
	Publishers []Publisher
	// Metrics serves GET /metrics; nil leaves the route out.
	Metrics http.Handler
	// CrossDC is the cross-datacenter distribution, nil when off.
	CrossDC CrossDC
	// ReceiptTimeout bounds how long a write waits for this node's stores.
	ReceiptTimeout time.Duration
	// WaitAllTimeout bounds ?wait=all, the wait for every node's stores.
	WaitAllTimeout time.Duration
	// Now is the clock stamped into commands.
	Now    func() time.Time
	Logger *slog.Logger
}

// Server is the HTTP API of one node.
type Server struct {
	node    Node
	masters Masters
	opts    Options
	// forwarder is opts.Client without its Timeout, for forwards.
	forwarder *http.Client
	tokens    [][sha256.Size]byte
	log       *slog.Logger
	mux       *http.ServeMux
}

// New returns the API of n.
func New(n Node, m Masters, opts Options) *Server {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	forwarder := *opts.Client
	forwarder.Timeout = 0
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 10 * time.Second // node.Config's default
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LeaderWait <= 0 {
		opts.LeaderWait = 5 * time.Second
	}
	if opts.ReceiptTimeout <= 0 {
		opts.ReceiptTimeout = 5 * time.Second
	}
	if opts.WaitAllTimeout <= 0 {
		opts.WaitAllTimeout = 10 * time.Second
	}
	if opts.ResolveBudget <= 0 {
		opts.ResolveBudget = 5 * time.Second
	}
	s := &Server{node: n, masters: m, opts: opts, forwarder: &forwarder, log: opts.Logger, mux: http.NewServeMux()}
	for _, t := range opts.Tokens {
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t)))
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "caught_up": s.node.CaughtUp()})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.handle("POST /v1/failover", s.failover)
	s.handle("POST /v1/populate", s.populate)
	s.handle("GET /v1/masters", s.listMasters)
	s.handle("GET /v1/masters/{alias}", s.getMaster)
	s.handle("GET /v1/masters/{alias}/applied", s.applied)
	s.handle("GET /v1/status", s.status)
	if s.opts.Metrics != nil {
		s.mux.Handle("GET /metrics", s.authorize(s.opts.Metrics.ServeHTTP))
	}
	s.handle("GET /api/leader-check", s.leaderCheck)
	for _, m := range []string{"GET", "POST"} {
		s.handle(m+" /api/submit-masters-to-kv-stores", s.submit)
		s.handle(m+" /api/submit-masters-to-kv-stores/{$}", s.submit)
		s.handle(m+" /api/submit-masters-to-kv-stores/{alias}", s.submit)
	}
}

// handle registers h behind the bearer-token check.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.authorize(h))
}

// ServeHTTP routes r. A request no route takes (an unknown path, or a
// method its path does not serve) is authenticated like any other before it
// is told so, and told in the API's error shape: ServeMux's own plain-text
// 404 and 405 came before the token check and let anyone map the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" { // a route, or ServeMux's redirect to one
		s.mux.ServeHTTP(w, r) // which sets the route's path values
		return
	}
	s.authorize(func(w http.ResponseWriter, r *http.Request) { s.unrouted(w, r, h) })(w, r)
}

// unrouted answers a request no route takes with the status ServeMux's
// handler h chose for it (404, or 405 with the Allow header it set).
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.status == http.StatusMethodNotAllowed {
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.fail(w, r, fmt.Errorf("%w: %s %s takes %s", errMethod, r.Method, r.URL.Path, rec.header.Get("Allow")))
		return
	}
	s.fail(w, r, fmt.Errorf("%w: no endpoint %s", errNotFound, r.URL.Path))
}

// statusRecorder keeps the status and headers a handler sets and drops
// its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return len(b), nil
}

// readyz answers 200 once a leader is known and this node caught up, so a
// write is served without waiting for an election and a read is current;
// 503 with the reason otherwise. Unlike /healthz it is not a liveness
// check: a node of a group without quorum is alive but not ready. Like
// /healthz it needs no token, and a probe is not logged.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := s.node.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "not ready: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": s.node.Status().Leader.ID})
}

// leaderCheck is orchestrator's /api/leader-check, which
// orchestrator-client asks every URL of ORCHESTRATOR_API to find the one
// to send its command to: 200 "OK" on the leader, 404 "Not leader"
// elsewhere. (Any node would do for masterkv, which forwards writes, but
// the script insists on one 200.)
func (s *Server) leaderCheck(w http.ResponseWriter, _ *http.Request) {
	if st := s.node.Status(); st.State == "Leader" && st.Leader.ID == s.node.ID() {
		writeJSON(w, http.StatusOK, "OK")
		return
	}
	writeJSON(w, http.StatusNotFound, "Not leader")
}

// credential returns the token a request carries: a bearer token, or the
// password of basic auth (any user name), as orchestrator-client sends
// with ORCHESTRATOR_AUTH_USER and ORCHESTRATOR_AUTH_PASSWORD. ok is false
// when it carries neither.
func credential(r *http.Request) (token string, ok bool) {
	// The scheme name is case-insensitive (RFC 9110 §11.1).
	auth := r.Header.Get("Authorization")
	if len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		return auth[7:], true
	}
	if _, password, ok := r.BasicAuth(); ok {
		return password, true
	}
	return "", false
}

// authorize checks the request's token against every configured token in
// constant time (hashes first, so lengths leak nothing either).
func (s *Server) authorize(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(s.tokens) == 0 {
			h(w, r)
			return
		}
		given, ok := credential(r)
		sum := sha256.Sum256([]byte(given))
		match := 0
		for _, t := range s.tokens {
			match |= subtle.ConstantTimeCompare(sum[:], t[:])
		}
		if !ok || match != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="masterkv"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="masterkv"`)
			s.fail(w, r, errUnauthorized)
			return
		}
		h(w, r)
	}
}

// fail answers an error and logs it. Client faults log at info, ours at
// warn. Request bodies and headers are never logged: they carry tokens.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusFor(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	if strings.HasPrefix(r.URL.Path, orchestratorAPIPrefix) {
		// orchestrator-client parses every answer of its API this way.
		writeJSON(w, status, orchestratorResponse{Code: "ERROR", Message: err.Error()})
		return
	}
	writeError(w, err)
}
