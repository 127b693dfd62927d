package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// headerForwardedBy marks a request a follower forwarded, so the receiver
// never forwards it again: a leader change mid-flight yields a 503 the
// caller can retry, never a loop.
const headerForwardedBy = "X-Masterkv-Forwarded-By"

var errForward = errors.New("cannot reach the leader")

// forwardedHeaders are the request headers passed on to the leader.
var forwardedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "Accept"}

// forward replays a write on the leader and relays its answer.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	if by := r.Header.Get(headerForwardedBy); by != "" {
		s.fail(w, r, fmt.Errorf("request forwarded by %s reached a node that is not the leader: %w", by, errForward))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.LeaderWait)
	leader, err := s.node.LeaderPeer(ctx)
	cancel()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if leader.ID == s.node.ID() || leader.HTTPAddr == "" {
		s.fail(w, r, fmt.Errorf("leader %q has no usable HTTP address: %w", leader.ID, errForward))
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, baseURL(leader.HTTPAddr)+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		s.fail(w, r, fmt.Errorf("forward to leader %s: %v: %w", leader.ID, err, errForward))
		return
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(headerForwardedBy, s.node.ID())
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		s.fail(w, r, fmt.Errorf("forward to leader %s: %v: %w", leader.ID, err, errForward))
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("X-Masterkv-Leader", leader.ID)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func baseURL(addr string) string {
	if strings.Contains(addr, "://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}
