package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/raftnode/httpapi"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/nodetest"
)

// The API of every test cluster accepts two bearer tokens, as during a
// token rotation.
const (
	token        = "t1"
	rotatedToken = "t2"
)

// fixedNow is every node's clock, so updated_at is deterministic.
var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// apiCluster is a three-node raft group with the HTTP API of each node
// served on a real loopback listener, wired for forwarding.
type apiCluster struct {
	raft   *nodetest.Cluster
	srvs   []*httptest.Server
	urls   []string
	client *http.Client
}

type clusterOptions struct {
	// leaderWait is httpapi.Options.LeaderWait (0: the API default).
	leaderWait time.Duration
	// fastRaft keeps nodetest's fastest timeouts. Off, elections are a bit
	// slower so that leadership does not move under -race while a test
	// compares raft indexes.
	fastRaft bool
	// resolver completes masters' addresses (nil: no resolution).
	resolver master.Resolver
}

// newAPICluster starts the group and its servers; all stop when the test ends.
func newAPICluster(t *testing.T, o clusterOptions) *apiCluster {
	t.Helper()
	const n = 3
	c := &apiCluster{}
	for range n {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		c.srvs = append(c.srvs, srv)
		c.urls = append(c.urls, "http://"+srv.Listener.Addr().String())
	}
	var tune func(*raft.Config)
	if !o.fastRaft {
		tune = func(rc *raft.Config) {
			rc.HeartbeatTimeout = 400 * time.Millisecond
			rc.ElectionTimeout = 400 * time.Millisecond
			rc.LeaderLeaseTimeout = 200 * time.Millisecond
		}
	}
	c.raft = nodetest.New(t, n, nodetest.Options{HTTPAddrs: c.urls, Tune: tune})
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i, nd := range c.raft.Nodes {
		c.srvs[i].Config.Handler = httpapi.New(nd, nd.FSM(), httpapi.Options{
			Layout:     discovery.NewLayout("mysql/master", true),
			Tokens:     []string{token, rotatedToken},
			Resolver:   o.resolver,
			LeaderWait: o.leaderWait,
			Now:        func() time.Time { return fixedNow },
			Logger:     discard,
		})
		c.srvs[i].Start()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c.client = &http.Client{Timeout: 20 * time.Second, Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// leader returns the position of the current leader.
func (c *apiCluster) leader(t *testing.T) int {
	t.Helper()
	return c.raft.Index(c.raft.WaitLeader())
}

// follower returns the position of a node that is not the leader.
func (c *apiCluster) follower(t *testing.T) int {
	t.Helper()
	l := c.leader(t)
	for i, n := range c.raft.Nodes {
		if i != l && n != nil {
			return i
		}
	}
	t.Fatal("no follower")
	return -1
}

// targets are the two kinds of node a request can land on.
func (c *apiCluster) targets(t *testing.T) []struct {
	name string
	node int
} {
	return []struct {
		name string
		node int
	}{{"leader", c.leader(t)}, {"follower", c.follower(t)}}
}

// lastIndex returns the leader's id and raft LastIndex.
func (c *apiCluster) lastIndex(t *testing.T) (string, uint64) {
	t.Helper()
	l := c.raft.WaitLeader()
	return l.ID(), l.Status().LastIndex
}

// assertNoNewEntry fails when the leader changed or its log grew since
// (id, idx) were taken with lastIndex.
func (c *apiCluster) assertNoNewEntry(t *testing.T, id string, idx uint64) {
	t.Helper()
	gotID, got := c.lastIndex(t)
	if gotID != id {
		t.Fatalf("leader moved from %s to %s during the test; cannot compare raft indexes", id, gotID)
	}
	if got != idx {
		t.Errorf("leader %s raft LastIndex = %d, want %d unchanged (something was committed)", id, got, idx)
	}
}

// response is an HTTP answer read to the end.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to node i. hdr is pairs of header name and value;
// Authorization defaults to the first token and an empty value removes a
// header. Content-Type defaults to JSON for a body starting with "{" and
// to a form otherwise, as curl -d sends.
func (c *apiCluster) do(t *testing.T, i int, method, path, body string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.urls[i]+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("build %s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		ct := "application/x-www-form-urlencoded"
		if strings.HasPrefix(body, "{") {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if len(hdr)%2 != 0 {
		t.Fatalf("do: odd header list %q", hdr)
	}
	for k := 0; k < len(hdr); k += 2 {
		if hdr[k+1] == "" {
			req.Header.Del(hdr[k])
		} else {
			req.Header.Set(hdr[k], hdr[k+1])
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s on node%d: %v", method, path, i, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer of %s %s on node%d: %v", method, path, i, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// mustStatus fails the test unless r has status want.
func mustStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body %s", r.status, want, r.body)
	}
}

// decodeStrict decodes r's body into v, refusing fields v does not have.
func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s into %T: %v", body, v, err)
	}
}

// topKeys returns the sorted keys of the JSON object in body.
func topKeys(t *testing.T, body []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("answer %s is not a JSON object: %v", body, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// mustKeys fails unless the JSON object in body has exactly the keys want.
func mustKeys(t *testing.T, body []byte, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := topKeys(t, body); !slices.Equal(got, want) {
		t.Fatalf("answer keys = %q, want %q; body %s", got, want, body)
	}
}

// mustHaveKeys fails unless the JSON object in body has at least the keys
// want. It is for answers meant to grow, such as /v1/status.
func mustHaveKeys(t *testing.T, body []byte, want ...string) {
	t.Helper()
	got := topKeys(t, body)
	for _, k := range want {
		if !slices.Contains(got, k) {
			t.Fatalf("answer keys = %q, want them to include %q; body %s", got, k, body)
		}
	}
}

// apiError is the error answer of the native API.
type apiError struct {
	Error string `json:"error"`
}

// mustAPIError checks an error answer: status, JSON content type, exactly
// {"error": "..."}, the message naming field (as "field: ...") when field
// is set, and containing each of contains.
func mustAPIError(t *testing.T, r response, status int, field string, contains ...string) {
	t.Helper()
	mustStatus(t, r, status)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	mustKeys(t, r.body, "error")
	var e apiError
	decodeStrict(t, r.body, &e)
	if field != "" && !strings.HasPrefix(e.Error, field+": ") {
		t.Errorf("error = %q, want it to name field %q", e.Error, field)
	}
	for _, s := range contains {
		if !strings.Contains(e.Error, s) {
			t.Errorf("error = %q, want it to contain %q", e.Error, s)
		}
	}
}

// receipt is the answer of a committed failover.
type receipt struct {
	Cluster   string             `json:"cluster"`
	Master    string             `json:"master"`
	Epoch     uint64             `json:"epoch"`
	Pairs     []discovery.KVPair `json:"pairs"`
	ID        string             `json:"id"`
	Duplicate bool               `json:"duplicate"`
}

// wantPairs spells out the six pairs of a cluster under mysql/master/, in
// orchestrator's order with the epoch last. It is written out here rather
// than taken from discovery.Layout so that the test checks the layout too.
func wantPairs(alias, host string, port int, ipv4, ipv6 string, epoch uint64) []discovery.KVPair {
	k := "mysql/master/" + alias
	return []discovery.KVPair{
		{Key: k, Value: host + ":" + strconv.Itoa(port)},
		{Key: k + "/hostname", Value: host},
		{Key: k + "/port", Value: strconv.Itoa(port)},
		{Key: k + "/ipv4", Value: ipv4},
		{Key: k + "/ipv6", Value: ipv6},
		{Key: k + "/epoch", Value: strconv.FormatUint(epoch, 10)},
	}
}

// mustFailover commits a failover through node i and returns its receipt.
func (c *apiCluster) mustFailover(t *testing.T, i int, body string, hdr ...string) receipt {
	t.Helper()
	r := c.do(t, i, http.MethodPost, "/v1/failover", body, hdr...)
	mustStatus(t, r, http.StatusOK)
	var rc receipt
	decodeStrict(t, r.body, &rc)
	return rc
}

// waitFor polls cond every 10 ms until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		case <-tick.C:
		}
	}
}

// waitRecord waits until every running node holds alias with master
// (host:port) at epoch.
func (c *apiCluster) waitRecord(t *testing.T, alias, master string, epoch uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, "every node to hold "+alias+" = "+master+" at epoch "+strconv.FormatUint(epoch, 10), func() bool {
		for _, n := range c.raft.Nodes {
			if n == nil {
				continue
			}
			rec, ok := n.FSM().Record(alias)
			if !ok || rec.Master.HostPort() != master || rec.Epoch != epoch {
				return false
			}
		}
		return true
	})
}

// barrierAlias is the cluster barrier writes to.
const barrierAlias = "zz-barrier"

// barrier commits a failover of barrierAlias straight through the leader's
// raft node (so it works while the leader's HTTP server is down) and waits
// until every running node's store shows it. The FSM applies entries in
// log order, so after barrier every node has applied every earlier entry,
// whatever kind of entry it was.
func (c *apiCluster) barrier(t *testing.T) {
	t.Helper()
	cmd := command.Command{Type: command.Failover, At: fixedNow.UnixMilli(), Failover: &command.FailoverPayload{
		Entry: command.Entry{Cluster: barrierAlias, Master: master.Master{Host: "10.9.9.9", Port: 9}}}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	res, err := c.raft.WaitLeader().Propose(ctx, cmd)
	if err != nil {
		t.Fatalf("barrier: %v", err)
	}
	c.waitRecord(t, barrierAlias, "10.9.9.9:9", res.Index)
}

// assertRecordEverywhere checks, once every node applied everything
// committed so far, that every running node holds alias with master at
// epoch.
func (c *apiCluster) assertRecordEverywhere(t *testing.T, alias, master string, epoch uint64) {
	t.Helper()
	c.barrier(t)
	for _, n := range c.raft.Nodes {
		if n == nil {
			continue
		}
		rec, ok := n.FSM().Record(alias)
		if !ok {
			t.Errorf("%s: no record for %s, want %s at epoch %d", n.ID(), alias, master, epoch)
			continue
		}
		if got := rec.Master.HostPort(); got != master || rec.Epoch != epoch {
			t.Errorf("%s: %s = %s at epoch %d, want %s at epoch %d", n.ID(), alias, got, rec.Epoch, master, epoch)
		}
	}
}

// running returns the running nodes.
func (c *apiCluster) running() []*node.Node {
	var out []*node.Node
	for _, n := range c.raft.Nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}
