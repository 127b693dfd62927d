package nodeclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Do sends req to the nodes, starting with the one that answered last,
// until one answers with a status other than 502, 503 or 504, and relays
// that answer whatever its status.
//
// A node that fails (no connection, 502/503/504) is passed over at once
// for the next one. A node that has not answered within Config.HedgeDelay
// (a process frozen by a GC or VM pause answers nothing and keeps its
// connections open) is not waited for either: the request is sent to the
// next node too, while the first stays in flight, and the first definitive
// answer wins; the other attempts are then cancelled. Every copy carries
// req's idempotency key, so the group commits it once however many nodes
// received it (a later copy is answered as a duplicate of the first).
//
// Attempts stop at Config.Attempts or shortly before ctx's deadline; then
// the error wraps ErrUnavailable and says what each attempt got, and the
// Response is the last 5xx answer if there was one.
func (c *Client) Do(ctx context.Context, req Request) (Response, error) {
	if req.IdempotencyKey == "" {
		return Response{}, ErrNoKey
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the attempts that lost
	r := &race{c: c, req: req, next: int(c.preferred.Load()), backoff: c.backoff,
		busy: make([]bool, len(c.nodes)), results: make(chan outcome, c.attempts)}
	return r.run(ctx)
}

// outcome is one attempt's answer.
type outcome struct {
	node int
	resp Response
	err  error
}

// race is one call of Do: the attempts sent so far and those in flight.
type race struct {
	c       *Client
	req     Request
	next    int    // the node to try next, going round
	sent    int    // attempts sent
	busy    []bool // nodes with an attempt in flight
	pending int
	results chan outcome
	backoff time.Duration

	last     Response
	failures []string
	refused  bool // a node answered 401: our token is wrong
}

func (r *race) run(ctx context.Context) (Response, error) {
	hedge := time.NewTimer(time.Hour)
	hedge.Stop()
	defer hedge.Stop()
	for {
		if r.pending == 0 && !r.sendAfterFailures(ctx) {
			break
		}
		if r.c.hedge > 0 {
			hedge.Reset(r.c.hedge)
		}
		select {
		case o := <-r.results:
			r.pending--
			r.busy[o.node] = false
			if done, resp, err := r.settle(ctx, o); done {
				return resp, err
			}
			// The next node at once, unless a round just ended: the top of
			// the loop then pauses first, once nothing is in flight.
			if r.sent%len(r.c.nodes) != 0 && r.sent < r.c.attempts {
				r.send(ctx)
			}
		case <-hedge.C:
			if r.sent < r.c.attempts && r.send(ctx) {
				r.c.log.InfoContext(ctx, "node slow to answer; request sent to another node too",
					"after", r.c.hedge, "path", r.req.Method+" "+r.req.Path, "in_flight", r.pending)
			}
		case <-ctx.Done():
			r.failures = append(r.failures, "deadline reached")
			return r.last, r.unavailable()
		}
	}
	return r.last, r.unavailable()
}

// sendAfterFailures starts the next attempt when none is in flight,
// pausing first after a full round of failed nodes. It is false when the
// call must give up: attempts used, or the deadline too close.
func (r *race) sendAfterFailures(ctx context.Context) bool {
	if r.sent >= r.c.attempts {
		return false
	}
	if r.sent > 0 && r.sent%len(r.c.nodes) == 0 {
		if !r.c.pause(ctx, r.backoff) {
			r.failures = append(r.failures, "deadline reached")
			return false
		}
		r.backoff = min(2*r.backoff, maxBackoff)
	}
	return r.send(ctx) // nothing is in flight: only the deadline can stop it
}

// send starts an attempt on the next node that has none in flight. It is
// false when every node is busy or the deadline is too close.
func (r *race) send(ctx context.Context) bool {
	timeout, ok := r.c.attemptTimeout(ctx)
	if !ok {
		r.failures = append(r.failures, "deadline reached")
		return false
	}
	n := len(r.c.nodes)
	for range n {
		i := r.next % n
		r.next++
		if r.busy[i] {
			continue
		}
		r.busy[i] = true
		r.pending++
		r.sent++
		go func() {
			resp, err := r.c.once(ctx, timeout, r.c.nodes[i], r.req)
			r.results <- outcome{node: i, resp: resp, err: err}
		}()
		return true
	}
	return false
}

// settle judges one answer: done with the call's result when it is
// definitive (any status but 502/503/504, or an oversized answer),
// otherwise recorded as a failure.
func (r *race) settle(ctx context.Context, o outcome) (bool, Response, error) {
	switch {
	case errors.Is(o.err, ErrTooLarge):
		return true, Response{}, o.err
	case o.err == nil && o.resp.Status == http.StatusUnauthorized:
		// Not the caller's 401: the node refused our token. Another node
		// may already have the new one (a rotation under way).
		r.refused = true
		r.failures = append(r.failures, fmt.Sprintf("%s: 401 %s", o.resp.Node, errorMessage(o.resp.Body)))
	case o.err == nil && !retryable(o.resp.Status):
		r.c.preferred.Store(int32(o.node))
		return true, o.resp, nil
	case o.err == nil:
		r.last = o.resp
		r.failures = append(r.failures, fmt.Sprintf("%s: %d %s", o.resp.Node, o.resp.Status, errorMessage(o.resp.Body)))
	case ctx.Err() != nil && errors.Is(o.err, context.Canceled):
		return false, Response{}, nil // cancelled by Do's end, not a node failure
	default:
		r.failures = append(r.failures, fmt.Sprintf("%s: %v", r.c.nodes[o.node].Redacted(), o.err))
	}
	r.c.log.WarnContext(ctx, "node attempt failed", "node", r.c.nodes[o.node].Redacted(), "attempt", len(r.failures),
		"path", r.req.Method+" "+r.req.Path, "err", r.failures[len(r.failures)-1])
	return false, Response{}, nil
}

func (r *race) unavailable() error {
	if r.refused {
		return fmt.Errorf("%w: %s", ErrNodeAuth, strings.Join(r.failures, "; "))
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(r.failures, "; "))
}
