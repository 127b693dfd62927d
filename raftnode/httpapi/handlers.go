package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/fsm"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// receipt answers a committed failover.
type receipt struct {
	Cluster   string             `json:"cluster"`
	Master    string             `json:"master"`
	Epoch     uint64             `json:"epoch"`
	Pairs     []discovery.KVPair `json:"pairs"`
	ID        string             `json:"id,omitempty"`
	Duplicate bool               `json:"duplicate,omitempty"`
	// Stores is the outcome in each of the answering node's stores.
	Stores map[string]string `json:"stores,omitempty"`
	// Nodes is, with ?wait=all, whether each other node applied it.
	Nodes map[string]string `json:"nodes,omitempty"`
}

// recordView is a record as the read API shows it.
type recordView struct {
	Cluster   string             `json:"cluster"`
	Master    string             `json:"master"`
	Host      string             `json:"host"`
	Port      int                `json:"port"`
	IPv4      string             `json:"ipv4"`
	IPv6      string             `json:"ipv6"`
	Epoch     uint64             `json:"epoch"`
	UpdatedAt string             `json:"updated_at"`
	Source    command.Type       `json:"source"`
	RequestID string             `json:"request_id,omitempty"`
	Pairs     []discovery.KVPair `json:"pairs"`
}

func (s *Server) view(r fsm.Record) recordView {
	return recordView{
		Cluster: r.Cluster, Master: r.Master.HostPort(), Host: r.Master.Host, Port: r.Master.Port,
		IPv4: r.Master.IPv4, IPv6: r.Master.IPv6, Epoch: r.Epoch,
		UpdatedAt: r.UpdatedAt.Format("2006-01-02T15:04:05.000Z07:00"), Source: r.Source,
		RequestID: r.RequestID, Pairs: s.opts.Layout.Pairs(r.Cluster, r.Master, r.Epoch),
	}
}

// propose commits c here, or forwards the original request to the leader.
// It reports whether it already answered (forwarded or failed).
func (s *Server) propose(w http.ResponseWriter, r *http.Request, body []byte, c command.Command) (fsm.Result, bool) {
	c.At = s.opts.Now().UnixMilli()
	res, err := s.node.Propose(r.Context(), c)
	if errors.Is(err, node.ErrNotLeader) {
		s.forward(w, r, body)
		return res, true
	}
	if err != nil {
		s.fail(w, r, err)
		return res, true
	}
	return res, false
}

// completeMaster resolves the host once (with resolution on) and uses the
// answer twice: to fill in ipv4/ipv6 when neither was given, and for the
// loopback guard over every address the name has, also when they were.
func (s *Server) completeMaster(ctx context.Context, field string, m master.Master) (master.Master, error) {
	addrs := master.Lookup(ctx, s.opts.Resolver, m.Host)
	m = master.Complete(m, addrs)
	if !s.opts.AllowLoopback {
		if err := master.CheckLoopback(m); err != nil {
			return m, master.Prefixed(field, err)
		}
		if err := master.CheckResolved(m.Host, addrs); err != nil {
			return m, master.Prefixed(field, err)
		}
	}
	return m, nil
}

func (s *Server) failover(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in, err := parseFailover(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	alias, m, err := in.entry("")
	if err == nil && in.Expected != "" {
		err = master.ValidateHostPort("expected", in.Expected)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := requestID(in.ID, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c := command.Command{Type: command.Failover, ID: id, Failover: &command.FailoverPayload{
		Entry: command.Entry{Cluster: alias, Master: m}, Expected: in.Expected, ExpectedEpoch: in.ExpectedEpoch.n}}
	c.Fingerprint = command.Fingerprint(c) // of the request as sent, before DNS
	if c.Failover.Master, err = s.completeMaster(r.Context(), "", m); err != nil {
		s.fail(w, r, err)
		return
	}
	res, done := s.propose(w, r, body, c)
	if done {
		return
	}
	rec := res.Records[0] // a remembered failover keeps its one record (fsm.KeepRecords)
	s.log.Info("failover committed", "cluster", rec.Cluster, "master", rec.Master.HostPort(), "epoch", rec.Epoch, "duplicate", res.Duplicate)
	rc := receipt{
		Cluster: rec.Cluster, Master: rec.Master.HostPort(), Epoch: rec.Epoch,
		Pairs: s.opts.Layout.Pairs(rec.Cluster, rec.Master, rec.Epoch), ID: id, Duplicate: res.Duplicate,
		Stores: s.storeOutcomes(r.Context(), res.Records),
	}
	if r.URL.Query().Get("wait") == "all" {
		rc.Nodes = s.waitAll(r.Context(), r, rec.Cluster, rec.Epoch)
	}
	writeJSON(w, http.StatusOK, rc)
}

// resolveWorkers bounds concurrent DNS lookups of one populate batch.
const resolveWorkers = 16

func (s *Server) populate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in populateInput
	if err := decodeJSON(body, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	id, err := requestID(in.ID, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries := make([]command.Entry, len(in.Masters))
	seen := map[string]int{}
	for i, raw := range in.Masters {
		field := fmt.Sprintf("masters[%d].", i)
		mi, err := decodeMaster(i, raw)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		alias, m, err := mi.entry(field)
		if err == nil {
			if j, dup := seen[alias]; dup {
				err = fieldErr(field+"cluster", "duplicates masters[%d].cluster %q", j, alias)
			}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		seen[alias] = i
		entries[i] = command.Entry{Cluster: alias, Master: m}
	}
	c := command.Command{Type: command.Populate, ID: id, Populate: &command.PopulatePayload{Masters: entries}}
	c.Fingerprint = command.Fingerprint(c) // of the request as sent, before DNS
	if err := s.completeAll(r.Context(), entries); err != nil {
		s.fail(w, r, err)
		return
	}
	res := fsm.Result{}
	if len(entries) > 0 {
		var done bool
		if res, done = s.propose(w, r, body, c); done {
			return
		}
	}
	// Count, not Records: a remembered populate keeps only its counts
	// when it injected more than fsm.KeepRecords clusters.
	s.log.Info("populate committed", "checked", len(entries), "submitted", res.Count, "duplicate", res.Duplicate)
	writeJSON(w, http.StatusOK, map[string]int{
		"checked": len(entries), "submitted": res.Count, "skipped": len(entries) - res.Count,
	})
}

// completeAll completes the masters of clusters the local store lacks (the
// others will be skipped by Apply) with bounded concurrency, and within
// ResolveBudget in all: a batch of names a DNS server never answers must
// not keep the request past the HTTP write timeout (the client would get
// no answer for a batch that then commits). A lookup the budget cuts short
// leaves the master without addresses, as a name that does not resolve.
func (s *Server) completeAll(ctx context.Context, entries []command.Entry) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ResolveBudget)
	defer cancel()
	errs := make([]error, len(entries))
	sem := make(chan struct{}, resolveWorkers)
	var wg sync.WaitGroup
	for i := range entries {
		field := fmt.Sprintf("masters[%d].", i)
		_, known := s.masters.Record(entries[i].Cluster)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if known {
				// Skipped by Apply, so not worth a DNS lookup; still bad
				// input if it names this machine.
				if !s.opts.AllowLoopback {
					errs[i] = master.Prefixed(field, master.CheckLoopback(entries[i].Master))
				}
				return
			}
			entries[i].Master, errs[i] = s.completeMaster(ctx, field, entries[i].Master)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		s.log.Warn("populate: DNS resolution budget spent; the masters not resolved by then are committed without addresses",
			"budget", s.opts.ResolveBudget, "masters", len(entries))
	}
	return errors.Join(errs...)
}

// orchestratorAPIPrefix is where the orchestrator-compatible endpoints
// live; their errors use orchestrator's shape too.
const orchestratorAPIPrefix = "/api/"

// orchestratorResponse is orchestrator's API response shape, plus, in
// lower case as in a failover's receipt, masterkv's own fields (ignored by
// orchestrator-client): the outcome per store of the answering node, and
// with ?wait=all per other node.
type orchestratorResponse struct {
	Code    string
	Message string
	Details any
	Stores  map[string]string `json:"stores,omitempty"`
	Nodes   map[string]string `json:"nodes,omitempty"`
	// Duplicate and Epoch answer a retry of a submit too large for its
	// pairs to be remembered (more than fsm.KeepRecords clusters): Details
	// is then empty, Message counts the masters of the first submit, Epoch
	// is the epoch it committed them at.
	Duplicate bool   `json:"duplicate,omitempty"`
	Epoch     uint64 `json:"epoch,omitempty"`
}

// submit is orchestrator's submit-masters-to-kv-stores: it re-commits all
// clusters or one, so every node rewrites them in its stores.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	alias := r.PathValue("alias")
	if alias != "" {
		if err := master.ValidateAlias(alias); err != nil {
			s.fail(w, r, err)
			return
		}
		if _, ok := s.masters.Record(alias); !ok {
			s.fail(w, r, fmt.Errorf("cluster %q is not in the store: %w", alias, fsm.ErrUnknownCluster))
			return
		}
	}
	id, err := requestID("", r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var res fsm.Result
	if alias != "" || len(s.masters.Records()) > 0 {
		c := command.Command{Type: command.Submit, ID: id, Submit: &command.SubmitPayload{Cluster: alias}}
		c.At = s.opts.Now().UnixMilli()
		res, err = s.node.Propose(r.Context(), c)
		if errors.Is(err, node.ErrNotLeader) {
			s.forward(w, r, body)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	details := []discovery.KVPair{}
	for _, rec := range res.Records {
		details = append(details, s.opts.Layout.Pairs(rec.Cluster, rec.Master, rec.Epoch)...)
	}
	s.log.Info("submit committed", "cluster", alias, "masters", res.Count, "index", res.Index, "duplicate", res.Duplicate)
	out := orchestratorResponse{Code: "OK", Message: fmt.Sprintf("Submitted %d masters", res.Count), Details: details}
	recs := res.Records
	if res.Count > len(res.Records) {
		out.Duplicate, out.Epoch = true, res.Epoch
		recs = s.atEpoch(res.Epoch)
	}
	out.Stores = s.storeOutcomes(r.Context(), recs)
	if r.URL.Query().Get("wait") == "all" && res.Count > 0 {
		if alias != "" {
			out.Nodes = s.waitAll(r.Context(), r, alias, res.Epoch)
		} else {
			out.Nodes = s.waitAllClusters(r.Context(), r, res.Index, res.Epoch)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// atEpoch stands for the records of a remembered submit of every cluster
// that kept only its count: each cluster the store holds now, at the
// submit's epoch. A store that attempted a cluster at that epoch or a later
// one has published the submit (or something newer) for it.
func (s *Server) atEpoch(epoch uint64) []fsm.Record {
	recs := s.masters.Records()
	for i := range recs {
		recs[i].Epoch = epoch
	}
	return recs
}

// readable refuses reads from a node still catching up after a restart
// (raft restores only the snapshot at start; later entries arrive from the
// leader), unless the caller accepts stale data with ?stale=true.
func (s *Server) readable(w http.ResponseWriter, r *http.Request) bool {
	if s.node.CaughtUp() || r.URL.Query().Get("stale") == "true" {
		return true
	}
	s.fail(w, r, errCatchingUp)
	return false
}

func (s *Server) listMasters(w http.ResponseWriter, r *http.Request) {
	if !s.readable(w, r) {
		return
	}
	// Streamed one record at a time: 10,000 records as one indented
	// document cost tens of MB of RSS on a node budgeted for 100 MB.
	recs := s.masters.Records()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if len(recs) == 0 {
		_, _ = io.WriteString(w, "{\n  \"masters\": []\n}\n")
		return
	}
	bw := bufio.NewWriter(w)
	_, _ = bw.WriteString("{\n  \"masters\": [\n    ")
	for i, rec := range recs {
		if i > 0 {
			_, _ = bw.WriteString(",\n    ")
		}
		b, _ := json.MarshalIndent(s.view(rec), "    ", "  ") // plain structs: cannot fail
		_, _ = bw.Write(b)
	}
	_, _ = bw.WriteString("\n  ]\n}\n")
	_ = bw.Flush()
}

func (s *Server) getMaster(w http.ResponseWriter, r *http.Request) {
	if !s.readable(w, r) {
		return
	}
	alias := r.PathValue("alias")
	rec, ok := s.masters.Record(alias)
	if !ok {
		s.fail(w, r, fmt.Errorf("cluster %q: %w", alias, errNotFound))
		return
	}
	writeJSON(w, http.StatusOK, s.view(rec))
}

// statusView is GET /v1/status: the raft view and each store's state.
type statusView struct {
	node.Status
	Stores  []publish.Status `json:"stores"`
	CrossDC any              `json:"cross_datacenter,omitempty"`
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	v := statusView{Status: s.node.Status(), Stores: []publish.Status{}}
	if s.opts.CrossDC != nil {
		v.CrossDC = s.opts.CrossDC.Status()
	}
	for _, p := range s.opts.Publishers {
		v.Stores = append(v.Stores, p.Status())
	}
	writeJSON(w, http.StatusOK, v)
}
