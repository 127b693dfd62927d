package testserver

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ConsulBin finds the consul binary: $MASTERKV_CONSUL_BIN, else
// <repo>/.tools/consul as `make test` builds it, else PATH.
func ConsulBin() string {
	if p := os.Getenv("MASTERKV_CONSUL_BIN"); p != "" {
		return p
	}
	if root := repoRoot(); root != "" {
		p := filepath.Join(root, ".tools", "consul")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("consul")
	return p
}

// ConsulOptions shape one agent.
type ConsulOptions struct {
	Datacenter string // default dc1
	// ManagementToken enables ACLs with default deny and this bootstrap
	// (initial management) token.
	ManagementToken string
	// JoinWAN lists agents to WAN-join (one datacenter each).
	JoinWAN []*Consul
	// TLS serves HTTPS on HTTPSPort with these PEM files.
	TLS *TLSFiles
}

// TLSFiles are PEM file paths.
type TLSFiles struct{ CA, Cert, Key string }

// Consul is one single-server Consul agent (its own datacenter) running
// as a real process with its data on disk, so Stop and Start keep its KV.
type Consul struct {
	t          testing.TB
	opts       ConsulOptions
	Datacenter string
	HTTPPort   int
	HTTPSPort  int
	SerfWAN    int
	dir        string
	cmd        *exec.Cmd
	log        *os.File
	exited     chan struct{}
}

// StartConsul starts an agent and waits until it has a leader.
func StartConsul(t testing.TB, opts ConsulOptions) *Consul {
	t.Helper()
	bin := ConsulBin()
	if bin == "" {
		missing(t, "the consul binary (.tools/consul)")
	}
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	c := &Consul{t: t, opts: opts, Datacenter: opts.Datacenter, dir: t.TempDir()}
	c.HTTPPort, c.SerfWAN = FreePort(t), FreePort(t)
	if opts.TLS != nil {
		c.HTTPSPort = FreePort(t)
	}
	serfLAN, server := FreePort(t), FreePort(t)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `datacenter = %q
node_name = "node-%s"
data_dir = %q
server = true
bootstrap_expect = 1
bind_addr = "127.0.0.1"
advertise_addr = "127.0.0.1"
client_addr = "127.0.0.1"
log_level = "warn"
disable_update_check = true
performance { raft_multiplier = 1 }
ports {
  http = %d
  https = %d
  dns = -1
  grpc = -1
  grpc_tls = -1
  serf_lan = %d
  serf_wan = %d
  server = %d
}
`, opts.Datacenter, opts.Datacenter, filepath.Join(c.dir, "data"), c.HTTPPort, httpsPort(c.HTTPSPort), serfLAN, c.SerfWAN, server)
	if opts.ManagementToken != "" {
		fmt.Fprintf(&cfg, `acl {
  enabled = true
  default_policy = "deny"
  enable_token_persistence = true
  tokens { initial_management = %q }
}
`, opts.ManagementToken)
	}
	if opts.TLS != nil {
		fmt.Fprintf(&cfg, `tls {
  defaults {
    ca_file = %q
    cert_file = %q
    key_file = %q
    verify_incoming = false
  }
}
`, opts.TLS.CA, opts.TLS.Cert, opts.TLS.Key)
	}
	for _, o := range opts.JoinWAN {
		fmt.Fprintf(&cfg, "retry_join_wan = [\"127.0.0.1:%d\"]\n", o.SerfWAN)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "agent.hcl"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatalf("write consul config: %v", err)
	}
	c.log = logFile(t, "consul-"+opts.Datacenter)
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

func httpsPort(p int) int {
	if p == 0 {
		return -1
	}
	return p
}

// Addr is the agent's HTTP address, host:port.
func (c *Consul) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.HTTPPort) }

// HTTPSAddr is the agent's HTTPS address, when TLS is on.
func (c *Consul) HTTPSAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.HTTPSPort) }

// Start (re)starts the agent on its ports and data dir and waits up to 30 s
// for it to elect itself leader.
func (c *Consul) Start() {
	c.t.Helper()
	c.cmd = exec.Command(ConsulBin(), "agent", "-config-file", filepath.Join(c.dir, "agent.hcl"))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start consul: %v", err)
	}
	c.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(c.cmd, c.exited)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.t.Fatalf("consul %s exited during start", c.Datacenter)
		default:
		}
		if c.hasLeader() && c.aclReady() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("consul %s had no leader within 30s", c.Datacenter)
}

func (c *Consul) hasLeader() bool {
	resp, err := http.Get("http://" + c.Addr() + "/v1/status/leader")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b [64]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode == 200 && strings.Contains(string(b[:n]), ":")
}

// aclReady reports whether the ACL system accepts the management token
// (always true without ACLs): the agent has a leader before it is done
// bootstrapping ACLs.
func (c *Consul) aclReady() bool {
	if c.opts.ManagementToken == "" {
		return true
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.Addr()+"/v1/acl/token/self", nil)
	req.Header.Set("X-Consul-Token", c.opts.ManagementToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop kills the agent and keeps its data; Start brings it back.
func (c *Consul) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	c.cmd = nil
}
