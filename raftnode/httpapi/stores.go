package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// Publisher is one of this node's external stores.
type Publisher interface {
	Name() string
	Wait(ctx context.Context, alias string, epoch uint64) string
	Applied(alias string) uint64
	Status() publish.Status
}

var _ Publisher = (*publish.Publisher)(nil)

// storeOutcomes waits, within ReceiptTimeout, for each of this node's
// stores to attempt every record, and returns the outcome per store: "ok",
// or the first non-ok outcome.
func (s *Server) storeOutcomes(ctx context.Context, recs []fsm.Record) map[string]string {
	if len(s.opts.Publishers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReceiptTimeout)
	defer cancel()
	out := make(map[string]string, len(s.opts.Publishers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range s.opts.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			for _, r := range recs {
				if o := p.Wait(ctx, r.Cluster, r.Epoch); o != "ok" {
					res = o
					break
				}
			}
			mu.Lock()
			out[p.Name()] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// appliedView answers GET /v1/masters/{alias}/applied: what this node
// committed for alias and what each of its stores confirmed.
type appliedView struct {
	Node   string            `json:"node"`
	Epoch  uint64            `json:"epoch"`
	Stores map[string]uint64 `json:"stores"`
}

func (s *Server) applied(w http.ResponseWriter, r *http.Request) {
	alias := r.PathValue("alias")
	rec, ok := s.masters.Record(alias)
	if !ok {
		s.fail(w, r, fmt.Errorf("cluster %q: %w", alias, errNotFound))
		return
	}
	v := appliedView{Node: s.node.ID(), Epoch: rec.Epoch, Stores: map[string]uint64{}}
	for _, p := range s.opts.Publishers {
		v.Stores[p.Name()] = p.Applied(alias)
	}
	writeJSON(w, http.StatusOK, v)
}

// waitAll polls every other node until each reports alias applied at
// epoch or later in all its stores, within WaitAllTimeout. It returns the
// state per node: "ok", "pending" or "error: ...".
func (s *Server) waitAll(ctx context.Context, r *http.Request, alias string, epoch uint64) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WaitAllTimeout)
	defer cancel()
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range s.node.Status().Peers {
		if p.ID == s.node.ID() {
			continue
		}
		if p.HTTPAddr == "" {
			out[p.ID] = "error: no HTTP address configured"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := s.pollApplied(ctx, r, baseURL(p.HTTPAddr)+"/v1/masters/"+url.PathEscape(alias)+"/applied", epoch)
			mu.Lock()
			out[p.ID] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// waitAllClusters is waitAll for a submit of every cluster: it polls every
// other node's status, one request per node rather than per cluster, until
// the node applied the entry at index and each of its stores confirmed
// epoch or later with nothing left in its backlog.
func (s *Server) waitAllClusters(ctx context.Context, r *http.Request, index, epoch uint64) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, s.opts.WaitAllTimeout)
	defer cancel()
	out := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range s.node.Status().Peers {
		if p.ID == s.node.ID() {
			continue
		}
		if p.HTTPAddr == "" {
			out[p.ID] = "error: no HTTP address configured"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := s.poll(ctx, r, baseURL(p.HTTPAddr)+"/v1/status", func(body io.Reader) bool {
				var st struct {
					StoreIndex uint64 `json:"store_index"`
					Stores     []struct {
						Applied uint64 `json:"applied_epoch"`
						Backlog int    `json:"backlog"`
					} `json:"stores"`
				}
				if json.NewDecoder(body).Decode(&st) != nil || st.StoreIndex < index {
					return false
				}
				for _, e := range st.Stores {
					if e.Applied < epoch || e.Backlog > 0 {
						return false
					}
				}
				return true
			})
			mu.Lock()
			out[p.ID] = res
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (s *Server) pollApplied(ctx context.Context, r *http.Request, u string, epoch uint64) string {
	return s.poll(ctx, r, u, func(body io.Reader) bool {
		var v appliedView
		if json.NewDecoder(body).Decode(&v) != nil || v.Epoch < epoch {
			return false
		}
		for _, e := range v.Stores {
			if e < epoch {
				return false
			}
		}
		return true
	})
}

// poll GETs u every 50 ms with the caller's Authorization until done
// accepts the body of a 200 answer ("ok"), or ctx ends (the last state:
// "pending", with the last transport error if there was one).
func (s *Server) poll(ctx context.Context, r *http.Request, u string, done func(body io.Reader) bool) string {
	last := "pending"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return "error: " + err.Error()
		}
		if a := r.Header.Get("Authorization"); a != "" {
			req.Header.Set("Authorization", a)
		}
		if resp, err := s.opts.Client.Do(req); err == nil {
			ok := resp.StatusCode == http.StatusOK && done(resp.Body)
			resp.Body.Close()
			if ok {
				return "ok"
			}
		} else {
			last = "pending: " + err.Error()
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(50 * time.Millisecond):
		}
	}
}
