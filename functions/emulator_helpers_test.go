//go:build unix

package functions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rieBinary returns the emulator `make test-deps-lambda` installs, or one
// on PATH; without it the test is skipped, or fails under CI=true.
func rieBinary(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(root, ".tools", "aws-lambda-rie"); isExecutable(p) {
		abs, _ := filepath.Abs(p)
		return abs
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p
	}
	missing(t, "the AWS Lambda Runtime Interface Emulator (.tools/aws-lambda-rie, from `make test-deps-lambda`)")
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// goBuild builds pkg (relative to the repository root) into out for this
// machine, as `make invoke` does.
func goBuild(t *testing.T, pkg, out string, tags ...string) {
	t.Helper()
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(t.Context(), "go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv is the test's environment without MASTERKV_ and AWS_ settings,
// so a developer's shell cannot change the processes under test.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MASTERKV_") && !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return out
}

// process is a child started in its own process group, so that stopping
// it also stops what it started (the emulator's bootstrap).
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

func startProcess(t *testing.T, name, logPath string, env []string, bin string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 16<<10 {
				b = b[len(b)-16<<10:]
			}
			t.Logf("==== output of %s ====\n%s", name, b)
		}
	})
	return p
}

// stop sends SIGTERM (the emulator then kills its runtime), and SIGKILL
// to the whole group after 5s.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

func (p *process) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitFor polls cond every 20ms until it returns nil, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
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
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// nodeGroup is three real raftnode processes on loopback.
type nodeGroup struct {
	urls  []string
	procs []*process
	token string
}

func startNodeGroup(t *testing.T, dir string) *nodeGroup {
	t.Helper()
	bin := filepath.Join(dir, "raftnode")
	goBuild(t, "./raftnode", bin)
	g := &nodeGroup{token: "emulator-node-token"}
	var peers []string
	var raftAddrs, httpAddrs []string
	for i := 1; i <= 3; i++ {
		raftAddrs = append(raftAddrs, freeAddr(t))
		httpAddrs = append(httpAddrs, freeAddr(t))
		peers = append(peers, fmt.Sprintf("node%d=%s=%s", i, raftAddrs[i-1], httpAddrs[i-1]))
		g.urls = append(g.urls, "http://"+httpAddrs[i-1])
	}
	for i := 1; i <= 3; i++ {
		env := []string{
			"MASTERKV_NODE_ID=node" + strconv.Itoa(i), "MASTERKV_DATA_DIR=" + filepath.Join(dir, "data"+strconv.Itoa(i)),
			"MASTERKV_RAFT_ADDR=" + raftAddrs[i-1], "MASTERKV_HTTP_ADDR=" + httpAddrs[i-1], "MASTERKV_PEERS=" + strings.Join(peers, ","),
			"MASTERKV_API_TOKENS=" + g.token, "MASTERKV_BOOTSTRAP=" + strconv.FormatBool(i == 1),
		}
		g.procs = append(g.procs, startProcess(t, "node"+strconv.Itoa(i), filepath.Join(dir, fmt.Sprintf("node%d.log", i)), env, bin))
	}
	waitFor(t, 20*time.Second, "a raft leader", func() error {
		for _, u := range g.urls {
			var s struct {
				State string `json:"state"`
			}
			if err := g.get(t, u+"/v1/status", &s); err == nil && s.State == "Leader" {
				return nil
			}
		}
		return fmt.Errorf("no node reports itself leader")
	})
	return g
}

// get decodes the JSON answer of an authenticated GET.
func (g *nodeGroup) get(t *testing.T, url string, v any) error {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// post sends an authenticated JSON POST and checks for 200.
func (g *nodeGroup) post(t *testing.T, path string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, g.urls[0]+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, out)
	}
}

// master returns what node i holds for alias ("" when nothing).
func (g *nodeGroup) master(t *testing.T, i int, alias string) string {
	var rec struct {
		Master string `json:"master"`
	}
	if err := g.get(t, g.urls[i]+"/v1/masters/"+alias, &rec); err != nil {
		return ""
	}
	return rec.Master
}

// waitMaster waits until every node holds alias = master.
func (g *nodeGroup) waitMaster(t *testing.T, alias, master string) {
	t.Helper()
	waitFor(t, 10*time.Second, "every node to hold "+alias+" = "+master, func() error {
		for i := range g.urls {
			if got := g.master(t, i, alias); got != master {
				return fmt.Errorf("node%d holds %q", i+1, got)
			}
		}
		return nil
	})
}

// emulator is aws-lambda-rie running one bootstrap.
type emulator struct {
	*process
	addr string
}

// startEmulator runs bootstrap under the emulator on free loopback ports
// (the invoke address and the Runtime API address).
func startEmulator(t *testing.T, rie, bootstrap, logPath string, env []string) *emulator {
	t.Helper()
	addr := freeAddr(t)
	env = append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT=30", "AWS_LAMBDA_FUNCTION_NAME="+filepath.Base(filepath.Dir(bootstrap)))
	p := startProcess(t, "aws-lambda-rie "+filepath.Base(filepath.Dir(bootstrap)), logPath, env, rie,
		"--runtime-interface-emulator-address", addr, "--runtime-api-address", freeAddr(t), bootstrap)
	waitFor(t, 10*time.Second, "the emulator to listen", func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	})
	return &emulator{process: p, addr: addr}
}

// invoke posts an event to the emulator and returns the function's answer.
func (e *emulator) invoke(t *testing.T, payload []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+e.addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("invoke: emulator answered %d: %s", resp.StatusCode, b)
	}
	return b
}

var (
	// reportInit is the Init Duration of the emulator's REPORT line.
	reportInit = regexp.MustCompile(`REPORT RequestId: \S+\s+Init Duration: ([0-9.]+) ms`)
	// rapidInit is the emulator's own log of the init phase: from
	// starting the bootstrap until it asked for its first invocation.
	rapidInit = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
)

// coldStart is the emulator's figures for the first invocation.
type coldStart struct {
	reportMs, rapidMs float64
}

func (e *emulator) coldStart(t *testing.T) coldStart {
	t.Helper()
	out := e.output()
	r, i := reportInit.FindStringSubmatch(out), rapidInit.FindStringSubmatch(out)
	if r == nil || i == nil {
		t.Fatalf("no Init Duration / INIT REPORT in the emulator's output:\n%s", out)
	}
	var cs coldStart
	cs.reportMs, _ = strconv.ParseFloat(r[1], 64)
	cs.rapidMs, _ = strconv.ParseFloat(i[1], 64)
	return cs
}
