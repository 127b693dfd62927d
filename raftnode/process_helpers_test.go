//go:build unix

package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// member is one raftnode process of a procCluster. Its addresses and data
// dir stay the same across restarts.
type member struct {
	id, dataDir, raftAddr, httpAddr string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returns
	logs   []string      // stderr files, one per start
}

// running reports whether the member's process is alive (possibly stopped).
func (m *member) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// procCluster is a group of real raftnode processes on loopback ports.
type procCluster struct {
	t       *testing.T
	bin     string
	dir     string
	token   string
	peers   string
	env     []string
	members []*member
	client  *http.Client
	// scheme of the members' HTTP API: "http", or "https" after useTLS.
	scheme string
}

// newProcCluster builds the raftnode binary and prepares n members (ids
// node1..noden) with free loopback ports and their own data dirs. extraEnv
// (KEY=value) is passed to every process. Nothing is started yet; every
// process still running when the test ends is killed, and on failure the
// test log gets the tail of every process's stderr.
func newProcCluster(t *testing.T, n int, extraEnv ...string) *procCluster {
	t.Helper()
	dir := t.TempDir()
	c := &procCluster{
		t: t, bin: buildRaftnode(t, dir), dir: dir, token: "proc-test-token", env: extraEnv,
		client: &http.Client{Timeout: 5 * time.Second}, scheme: "http",
	}
	var peers []string
	for i := 1; i <= n; i++ {
		m := &member{
			id: fmt.Sprintf("node%d", i), dataDir: filepath.Join(dir, fmt.Sprintf("data%d", i)),
			raftAddr: freeAddr(t), httpAddr: freeAddr(t),
		}
		c.members = append(c.members, m)
		peers = append(peers, m.id+"="+m.raftAddr+"="+m.httpAddr)
	}
	c.peers = strings.Join(peers, ",")
	t.Cleanup(c.shutdown)
	return c
}

// buildRaftnode builds the package under test (the test's working dir) into
// dir, once per test.
func buildRaftnode(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "raftnode")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build raftnode: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// useTLS switches the cluster to an HTTPS API before any member starts:
// PEERS name https:// addresses and the test's client uses cfg.
func (c *procCluster) useTLS(cfg *tls.Config) {
	c.t.Helper()
	c.scheme = "https"
	c.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	var peers []string
	for _, m := range c.members {
		peers = append(peers, m.id+"="+m.raftAddr+"=https://"+m.httpAddr)
	}
	c.peers = strings.Join(peers, ",")
}

// url is the base URL of member i's HTTP API.
func (c *procCluster) url(i int) string { return c.scheme + "://" + c.members[i].httpAddr }

// start runs member i. bootstrap sets MASTERKV_BOOTSTRAP=true.
func (c *procCluster) start(i int, bootstrap bool) {
	c.t.Helper()
	m := c.members[i]
	if m.running() {
		c.t.Fatalf("start %s: already running", m.id)
	}
	logPath := filepath.Join(c.dir, fmt.Sprintf("%s.start%d.stderr", m.id, len(m.logs)))
	f, err := os.Create(logPath)
	if err != nil {
		c.t.Fatalf("start %s: %v", m.id, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(c.bin)
	cmd.Env = append(hostEnv(),
		"MASTERKV_NODE_ID="+m.id,
		"MASTERKV_DATA_DIR="+m.dataDir,
		"MASTERKV_RAFT_ADDR="+m.raftAddr,
		"MASTERKV_HTTP_ADDR="+m.httpAddr,
		"MASTERKV_PEERS="+c.peers,
		"MASTERKV_API_TOKENS="+c.token,
		"MASTERKV_BOOTSTRAP="+strconv.FormatBool(bootstrap),
	)
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", m.id, err)
	}
	m.cmd, m.exited, m.logs = cmd, make(chan struct{}), append(m.logs, logPath)
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(m.exited)
}

// hostEnv is the test's environment without MASTERKV_ settings, so a
// developer's shell cannot change the processes under test.
func hostEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MASTERKV_") {
			out = append(out, kv)
		}
	}
	return out
}

// kill sends SIGKILL to member i and waits for the process to be gone.
func (c *procCluster) kill(i int) {
	c.t.Helper()
	m := c.members[i]
	if err := m.cmd.Process.Kill(); err != nil {
		c.t.Fatalf("kill %s: %v", m.id, err)
	}
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("kill %s: process still there after 10s", m.id)
	}
}

// freeze stops member i with SIGSTOP and waits until the kernel reports it
// stopped; thaw resumes it. A frozen member sends and answers nothing.
func (c *procCluster) freeze(i int) {
	c.t.Helper()
	m := c.members[i]
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("freeze %s: %v", m.id, err)
	}
	waitFor(c.t, 5*time.Second, m.id+" to stop", func() error { return checkStopped(m.cmd.Process.Pid) })
}

func (c *procCluster) thaw(i int) {
	c.t.Helper()
	m := c.members[i]
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("thaw %s: %v", m.id, err)
	}
}

// checkStopped reads the process state from /proc. Without /proc (not
// Linux) it trusts that kill(2) posted SIGSTOP, which stops the process
// before it runs further user code.
func checkStopped(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat("/proc/self/stat"); serr != nil {
			return nil
		}
	}
	if err != nil {
		return err
	}
	// Format: pid (comm) state ...; comm may hold spaces or parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) == 0 {
		return fmt.Errorf("process %d: unexpected /proc stat %q", pid, b)
	}
	if f[0] != "T" && f[0] != "t" {
		return fmt.Errorf("process %d state is %q, not stopped", pid, f[0])
	}
	return nil
}

// shutdown kills every process still running and, when the test failed,
// logs the tail of every stderr file.
// checkLogsKeepSecrets fails the test when a process logged the API
// token or a private key: whatever a test did to the group, secrets never
// reach the logs.
func (c *procCluster) checkLogsKeepSecrets() {
	for _, m := range c.members {
		for _, p := range m.logs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			for _, secret := range []string{c.token, "PRIVATE KEY"} {
				if bytes.Contains(b, []byte(secret)) {
					c.t.Errorf("%s logged a secret (%q) in %s", m.id, secret, filepath.Base(p))
				}
			}
		}
	}
}

func (c *procCluster) shutdown() {
	for _, m := range c.members {
		if m.running() {
			_ = m.cmd.Process.Kill()
			select {
			case <-m.exited:
			case <-time.After(10 * time.Second):
				c.t.Errorf("%s (pid %d) did not exit after SIGKILL", m.id, m.cmd.Process.Pid)
			}
		}
	}
	c.checkLogsKeepSecrets()
	if !c.t.Failed() {
		return
	}
	const tail = 64 << 10
	for _, m := range c.members {
		for _, p := range m.logs {
			b, err := os.ReadFile(p)
			if err != nil {
				c.t.Logf("%s: %v", p, err)
				continue
			}
			if len(b) > tail {
				b = append([]byte("...\n"), b[len(b)-tail:]...)
			}
			c.t.Logf("==== stderr of %s (%s) ====\n%s", m.id, filepath.Base(p), b)
		}
	}
}

// nodeStatus is the part of GET /v1/status the test reads.
type nodeStatus struct {
	NodeID string `json:"node_id"`
	State  string `json:"state"`
	Leader struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
	} `json:"leader"`
	Term              uint64 `json:"term"`
	LastIndex         uint64 `json:"last_index"`
	CommitIndex       uint64 `json:"commit_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	Clusters          int    `json:"clusters"`
}

// masterView is the part of a GET /v1/masters entry the test reads.
type masterView struct {
	Cluster   string `json:"cluster"`
	Master    string `json:"master"`
	Host      string `json:"host"`
	Port      int    `json:"port"`
	IPv4      string `json:"ipv4"`
	Epoch     uint64 `json:"epoch"`
	RequestID string `json:"request_id"`
}

// receiptView is the answer to a committed POST /v1/failover.
type receiptView struct {
	Cluster   string `json:"cluster"`
	Master    string `json:"master"`
	Epoch     uint64 `json:"epoch"`
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

// call sends one authenticated request to member i and returns the status
// and body. A transport error (refused, reset, timeout) is returned as err.
func (c *procCluster) call(ctx context.Context, i int, method, path string, body []byte, hdr http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(i)+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read %s %s body: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// getJSON GETs path on member i and decodes a 200 answer into v.
func (c *procCluster) getJSON(i int, path string, v any) error {
	ctx, cancel := context.WithTimeout(c.t.Context(), 2*time.Second)
	defer cancel()
	code, b, err := c.call(ctx, i, http.MethodGet, path, nil, nil)
	if err != nil {
		return fmt.Errorf("%s GET %s: %w", c.members[i].id, path, err)
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s GET %s: status %d: %s", c.members[i].id, path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s GET %s: decode %s: %w", c.members[i].id, path, b, err)
	}
	return nil
}

func (c *procCluster) status(i int) (nodeStatus, error) {
	var s nodeStatus
	return s, c.getJSON(i, "/v1/status", &s)
}

// masters returns member i's records by cluster.
func (c *procCluster) masters(i int) (map[string]masterView, error) {
	return c.mastersAt(i, "/v1/masters")
}

// mastersAt reads the records from path, e.g. with ?stale=true.
func (c *procCluster) mastersAt(i int, path string) (map[string]masterView, error) {
	var body struct {
		Masters []masterView `json:"masters"`
	}
	if err := c.getJSON(i, path, &body); err != nil {
		return nil, err
	}
	out := make(map[string]masterView, len(body.Masters))
	for _, m := range body.Masters {
		out[m.Cluster] = m
	}
	return out, nil
}

// failover POSTs one failover to member i with key as Idempotency-Key. The
// receipt is decoded only for a 200; otherwise body holds the answer.
func (c *procCluster) failover(ctx context.Context, i int, key, cluster, host string, port int) (rc receiptView, code int, body []byte, err error) {
	in, _ := json.Marshal(map[string]any{"cluster": cluster, "host": host, "port": port})
	hdr := http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key}}
	code, body, err = c.call(ctx, i, http.MethodPost, "/v1/failover", in, hdr)
	if err == nil && code == http.StatusOK {
		if derr := json.Unmarshal(body, &rc); derr != nil {
			return rc, code, body, fmt.Errorf("decode receipt %s: %w", body, derr)
		}
	}
	return rc, code, body, err
}

// waitHealthy waits until member i answers GET /healthz.
func (c *procCluster) waitHealthy(i int, timeout time.Duration) {
	c.t.Helper()
	m := c.members[i]
	waitFor(c.t, timeout, m.id+" /healthz", func() error {
		if !m.running() {
			return fmt.Errorf("%s exited", m.id)
		}
		var h map[string]any
		return c.getJSON(i, "/healthz", &h)
	})
}

// waitLeader waits until the running members agree on one leader that
// reports itself leader, and returns its position.
func (c *procCluster) waitLeader(timeout time.Duration) int {
	c.t.Helper()
	leader := -1
	waitFor(c.t, timeout, "an agreed raft leader", func() error {
		var err error
		leader, err = c.leaderNow()
		return err
	})
	return leader
}

// leaderNow returns the position of the leader when every running member
// names it and it reports itself leader.
func (c *procCluster) leaderNow() (int, error) {
	leader := -1
	var id string
	for i, m := range c.members {
		if !m.running() {
			continue
		}
		s, err := c.status(i)
		if err != nil {
			return -1, err
		}
		if s.Leader.ID == "" {
			return -1, fmt.Errorf("%s (%s) knows no leader", m.id, s.State)
		}
		if id != "" && s.Leader.ID != id {
			return -1, fmt.Errorf("%s sees leader %s, another node %s", m.id, s.Leader.ID, id)
		}
		id = s.Leader.ID
		if s.State == "Leader" {
			leader = i
		}
	}
	if leader < 0 || c.members[leader].id != id {
		return -1, fmt.Errorf("leader %q is not running or does not report itself leader", id)
	}
	return leader, nil
}

// waitFor polls cond every 20ms until it returns nil and fails the test
// with cond's last error after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v (last: %v)", what, t.Context().Err(), err)
		case <-tick.C:
		}
	}
}
