package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/masterkv/masterkv/raftnode/node"
)

// headerForwardedBy marks a request a follower forwarded, so the receiver
// never forwards it again: a leader change mid-flight yields a 503 the
// follower (or the caller) retries, never a loop.
const headerForwardedBy = "X-Masterkv-Forwarded-By"

var errForward = errors.New("cannot reach the leader")

// forwardedHeaders are the request headers passed on to the leader.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "Accept"}

// maxReforwards bounds how often one write is sent again to a new leader:
// leadership that moves faster than a write can commit ends in a 503.
const maxReforwards = 3

// forward replays a write on the leader and relays its answer.
//
// A leader that stops answering without closing its connections (a GC or
// VM pause, SIGSTOP) would hold the write for its whole budget. So while
// the write is in flight the follower watches raft: once another node is
// elected, the forward is cancelled and the write sent to the new leader,
// or served here when this node won. A leader that cannot be reached, or
// answers 503, is replaced the same way once a successor is known. Every
// attempt carries one idempotency key (see keyed), so the write commits at
// most once however many leaders saw it, and a late commit by the old
// leader is answered as a duplicate. A key the node made up for a write
// sent without one is not shown in the answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if by := r.Header.Get(headerForwardedBy); by != "" {
		s.fail(w, r, fmt.Errorf("request forwarded by %s reached a node that is not the leader: %w", by, errForward))
		return
	}
	r, made := s.keyed(r, body)
	if made != "" && r.URL.Path == "/v1/failover" {
		held := hideKey(w, made)
		defer held.finish()
		w = held
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.LeaderWait)
	leader, err := s.node.LeaderPeer(ctx)
	cancel()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// One deadline for all attempts: the leader's budget and one more
	// election (MaxRequestTime counts both).
	deadline := time.Now().Add(s.leaderBudget(r) + s.opts.LeaderWait)
	for sent := 0; ; sent++ {
		if leader.ID == s.node.ID() {
			s.serveHere(w, r, body)
			return
		}
		if leader.HTTPAddr == "" {
			s.fail(w, r, fmt.Errorf("leader %q has no usable HTTP address: %w", leader.ID, errForward))
			return
		}
		a := s.send(r, body, leader, deadline)
		if a.next == nil {
			s.relay(w, r, leader, a)
			return
		}
		if sent+1 >= maxReforwards {
			a.close()
			s.fail(w, r, fmt.Errorf("leadership moved %d times while the request was forwarded; retry: %w", sent+1, errForward))
			return
		}
		s.log.Info("forward sent again to the new leader", "path", r.URL.Path, "from", leader.ID, "to", a.next.ID, "reason", a.reason)
		a.close()
		leader = *a.next
	}
}

// attempt is the outcome of one forward: the leader's answer (resp, or err
// when it gave none), and next, a new leader to send the write to instead.
type attempt struct {
	resp   *http.Response
	err    error
	next   *node.Peer
	reason string
	// cancel ends the attempt's context, once resp has been relayed.
	cancel context.CancelFunc
}

func (a attempt) close() {
	if a.resp != nil {
		_ = a.resp.Body.Close()
	}
	a.cancel()
}

// send forwards the write to leader once, racing its answer against the
// election of another leader. An answer that says nothing about the write
// (no answer, or 503) waits up to LeaderWait for a successor to try.
func (s *Server) send(r *http.Request, body []byte, leader node.Peer, deadline time.Time) attempt {
	fctx, fcancel := context.WithDeadline(r.Context(), deadline)
	req, err := http.NewRequestWithContext(fctx, r.Method, baseURL(leader.HTTPAddr)+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return attempt{err: err, cancel: fcancel}
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(headerForwardedBy, s.node.ID())

	answered := make(chan attempt, 1)
	go func() {
		resp, err := s.forwarder.Do(req)
		answered <- attempt{resp: resp, err: err, cancel: fcancel}
	}()
	wctx, wcancel := context.WithCancel(fctx)
	defer wcancel()
	elected := make(chan node.Peer, 1)
	go func() {
		if p, err := s.node.NextLeader(wctx, leader.ID); err == nil {
			elected <- p
		}
	}()

	select {
	case a := <-answered:
		if !a.inconclusive() {
			return a
		}
		grace := time.NewTimer(s.opts.LeaderWait)
		defer grace.Stop()
		select {
		case p := <-elected:
			a.next, a.reason = &p, a.describe()
		case <-grace.C:
		case <-fctx.Done():
		}
		return a
	case p := <-elected:
		fcancel() // the old leader's answer no longer matters
		a := <-answered
		if a.resp != nil && !a.inconclusive() {
			return a // it answered as the election ended: relay it
		}
		a.next, a.reason = &p, "a new leader was elected while the forward waited"
		return a
	}
}

// inconclusive reports an answer that says nothing about the write: no
// answer at all, or 503 (the leader lost leadership, could not commit, or
// is stopping). With the same key, sending the write again is safe.
func (a attempt) inconclusive() bool {
	return a.err != nil || a.resp.StatusCode == http.StatusServiceUnavailable
}

func (a attempt) describe() string {
	if a.err != nil {
		return "the leader did not answer: " + a.err.Error()
	}
	return "the leader answered 503"
}

// relay copies the leader's answer, or fails when there was none.
func (s *Server) relay(w http.ResponseWriter, r *http.Request, leader node.Peer, a attempt) {
	defer a.cancel()
	if a.err != nil {
		s.fail(w, r, fmt.Errorf("forward to leader %s: %v: %w", leader.ID, a.err, errForward))
		return
	}
	defer a.resp.Body.Close()
	if ct := a.resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("X-Masterkv-Leader", leader.ID)
	w.WriteHeader(a.resp.StatusCode)
	_, _ = io.Copy(w, a.resp.Body)
}

// forwardSlack covers, in leaderBudget, the network and what the leader
// does outside its timeouts (decoding, DNS lookups).
const forwardSlack = 2 * time.Second

// leaderBudget is the longest the leader may take to answer the write r:
// ResolveBudget for its DNS lookups, ApplyTimeout to queue and commit it,
// ApplyTimeout again for the barrier that makes followers apply it,
// ReceiptTimeout for its stores and, with ?wait=all, WaitAllTimeout for
// the other nodes. A forward waits that long
// (plus slack), never a fixed time: a committed write must not be reported
// as failed because the node relaying it gave up first.
func (s *Server) leaderBudget(r *http.Request) time.Duration {
	b := s.opts.ResolveBudget + 2*s.opts.ApplyTimeout + s.opts.ReceiptTimeout + forwardSlack
	if r.URL.Query().Get("wait") == "all" {
		b += s.opts.WaitAllTimeout
	}
	return b
}

// MaxRequestTime is the longest a request may take on this node, for the
// HTTP server's WriteTimeout: its own DNS lookups (ResolveBudget), the
// wait for an election (LeaderWait), the leader's budget for a ?wait=all
// write, and a second election while the write is forwarded (after which
// it is sent to the new leader within the same budget).
func (s *Server) MaxRequestTime() time.Duration {
	r := &http.Request{URL: &url.URL{RawQuery: "wait=all"}}
	return s.opts.ResolveBudget + 2*s.opts.LeaderWait + s.leaderBudget(r)
}

// localRetriesKey counts, in a request's context, how often serveHere
// served it again on this node.
type localRetriesKey struct{}

// maxLocalRetries bounds serveHere: leadership that comes and goes faster
// than a request can commit ends in a 503 rather than a loop.
const maxLocalRetries = 3

// serveHere serves a write again on this node, which became the leader
// while the write waited for an election (the first election after start,
// or one it won mid-request): forwarding it to itself is what the leader
// would do with it anyway. The handler runs from the start again, so the
// request is validated and proposed exactly as if it had just arrived.
func (s *Server) serveHere(w http.ResponseWriter, r *http.Request, body []byte) {
	n, _ := r.Context().Value(localRetriesKey{}).(int)
	if n >= maxLocalRetries {
		s.fail(w, r, fmt.Errorf("leadership moved %d times while the request waited; retry: %w", n, errForward))
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), localRetriesKey{}, n+1))
	r2.Body = io.NopCloser(bytes.NewReader(body))
	s.mux.ServeHTTP(w, r2)
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}
