// Package config loads the raftnode daemon's settings from MASTERKV_*
// environment variables and checks them, naming the variable at fault.
package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/node"
)

// Prefix of every variable.
const Prefix = "MASTERKV"

// Config is the raftnode configuration. README.md lists every variable.
type Config struct {
	NodeID   string `envconfig:"MASTERKV_NODE_ID" default:"node1"`
	DataDir  string `envconfig:"MASTERKV_DATA_DIR" default:"data"`
	RaftAddr string `envconfig:"MASTERKV_RAFT_ADDR" default:"127.0.0.1:7000"`
	// RaftAdvertiseAddr is the raft address other nodes dial; defaults to
	// RaftAddr, which must then not be a wildcard address.
	RaftAdvertiseAddr string `envconfig:"MASTERKV_RAFT_ADVERTISE_ADDR"`
	HTTPAddr          string `envconfig:"MASTERKV_HTTP_ADDR" default:"127.0.0.1:8080"`
	// Peers is the first membership: id=raftaddr=httpaddr,...
	Peers     string `envconfig:"MASTERKV_PEERS"`
	Bootstrap bool   `envconfig:"MASTERKV_BOOTSTRAP"`
	// Dev runs a single-node group (unless PEERS is set), bootstraps it and
	// allows running without API tokens.
	Dev       bool     `envconfig:"MASTERKV_DEV"`
	APITokens []string `envconfig:"MASTERKV_API_TOKENS"`

	KVClusterMasterPrefix string `envconfig:"MASTERKV_KV_CLUSTER_MASTER_PREFIX" default:"mysql/master"`
	WriteEpochKey         bool   `envconfig:"MASTERKV_WRITE_EPOCH_KEY" default:"true"`
	ResolveIPs            bool   `envconfig:"MASTERKV_RESOLVE_IPS" default:"true"`
	AllowLoopback         bool   `envconfig:"MASTERKV_ALLOW_LOOPBACK"`

	SnapshotDelay  time.Duration `envconfig:"MASTERKV_SNAPSHOT_DELAY" default:"10s"`
	ApplyTimeout   time.Duration `envconfig:"MASTERKV_APPLY_TIMEOUT" default:"10s"`
	LeaderWait     time.Duration `envconfig:"MASTERKV_LEADER_WAIT" default:"5s"`
	ReceiptTimeout time.Duration `envconfig:"MASTERKV_RECEIPT_TIMEOUT" default:"5s"`
	WaitAllTimeout time.Duration `envconfig:"MASTERKV_WAIT_ALL_TIMEOUT" default:"10s"`

	// Consul: empty address means no Consul.
	ConsulAddress              string        `envconfig:"MASTERKV_CONSUL_ADDRESS"`
	ConsulScheme               string        `envconfig:"MASTERKV_CONSUL_SCHEME" default:"http"`
	ConsulACLToken             string        `envconfig:"MASTERKV_CONSUL_ACL_TOKEN"`
	ConsulDatacenter           string        `envconfig:"MASTERKV_CONSUL_DATACENTER"`
	ConsulKVStoreProvider      string        `envconfig:"MASTERKV_CONSUL_KV_STORE_PROVIDER" default:"consul"`
	ConsulMaxKVsPerTransaction int           `envconfig:"MASTERKV_CONSUL_MAX_KVS_PER_TRANSACTION"`
	ConsulCAFile               string        `envconfig:"MASTERKV_CONSUL_CA_FILE"`
	ConsulCertFile             string        `envconfig:"MASTERKV_CONSUL_CERT_FILE"`
	ConsulKeyFile              string        `envconfig:"MASTERKV_CONSUL_KEY_FILE"`
	ConsulTLSServerName        string        `envconfig:"MASTERKV_CONSUL_TLS_SERVER_NAME"`
	ConsulTimeout              time.Duration `envconfig:"MASTERKV_CONSUL_TIMEOUT" default:"5s"`
	// Cross-datacenter distribution by the leader.
	ConsulCrossDataCenterDistribution bool          `envconfig:"MASTERKV_CONSUL_CROSS_DATA_CENTER_DISTRIBUTION"`
	ConsulSweepInterval               time.Duration `envconfig:"MASTERKV_CONSUL_SWEEP_INTERVAL" default:"1m"`
	ConsulSweepConcurrency            int           `envconfig:"MASTERKV_CONSUL_SWEEP_CONCURRENCY" default:"8"`

	// ZooKeeper: empty address means no ZooKeeper.
	ZKAddress string        `envconfig:"MASTERKV_ZK_ADDRESS"`
	ZKChroot  string        `envconfig:"MASTERKV_ZK_CHROOT"`
	ZKAuth    string        `envconfig:"MASTERKV_ZK_AUTH"`
	ZKTimeout time.Duration `envconfig:"MASTERKV_ZK_TIMEOUT" default:"5s"`

	StoreRetryMax      time.Duration `envconfig:"MASTERKV_STORE_RETRY_MAX" default:"30s"`
	DriftCheckInterval time.Duration `envconfig:"MASTERKV_DRIFT_CHECK_INTERVAL" default:"1m"`
	DriftRepair        bool          `envconfig:"MASTERKV_DRIFT_REPAIR"`

	// TLS (docs/TLS.md); empty files mean plain TCP for raft and plain
	// HTTP, as `make run` uses.
	// Raft: the node's certificate and key, and the group's CA; all three
	// or none. Peers must present a certificate the CA signed.
	RaftCertFile string `envconfig:"MASTERKV_RAFT_TLS_CERT_FILE"`
	RaftKeyFile  string `envconfig:"MASTERKV_RAFT_TLS_KEY_FILE"`
	RaftCAFile   string `envconfig:"MASTERKV_RAFT_TLS_CA_FILE"`
	// HTTP: the API's certificate and key (together); with ClientCAFile the
	// API requires client certificates it signed. CAFile is what this node
	// verifies other nodes' API certificates against when it forwards a
	// write or polls them (the system roots when empty).
	HTTPCertFile     string `envconfig:"MASTERKV_HTTP_TLS_CERT_FILE"`
	HTTPKeyFile      string `envconfig:"MASTERKV_HTTP_TLS_KEY_FILE"`
	HTTPClientCAFile string `envconfig:"MASTERKV_HTTP_TLS_CLIENT_CA_FILE"`
	HTTPCAFile       string `envconfig:"MASTERKV_HTTP_TLS_CA_FILE"`
	// ReloadInterval is how often the files are checked for a change; 0
	// leaves reloading to SIGHUP.
	ReloadInterval time.Duration `envconfig:"MASTERKV_TLS_RELOAD_INTERVAL" default:"10s"`

	LogLevel  string `envconfig:"MASTERKV_LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"MASTERKV_LOG_FORMAT" default:"text"`
}

// Load reads the environment and validates the result.
func Load() (Config, error) {
	var c Config
	// Tags carry the full names and the prefix is empty: with a prefix,
	// envconfig falls back to the bare name (DEV, API_TOKENS ...) and a
	// variable meant for another program would configure this one.
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.APITokens = nonEmpty(c.APITokens)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func nonEmpty(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func varErr(name, format string, args ...any) error {
	return fmt.Errorf("config: %s_%s %s", Prefix, name, fmt.Sprintf(format, args...))
}

// Validate checks every setting; the error names the variable.
func (c Config) Validate() error {
	for _, check := range []func() error{c.validateNode, c.validateDurations, c.validateStores, c.validateTLS, c.validateLogging} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// validateNode checks who this node is, where it listens and whom it
// trusts.
func (c Config) validateNode() error {
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, "=, \t") {
		return varErr("NODE_ID", "must be non-empty without '=', ',' or spaces, got %q", c.NodeID)
	}
	if c.DataDir == "" {
		return varErr("DATA_DIR", "must not be empty")
	}
	for _, a := range []struct{ name, v string }{{"RAFT_ADDR", c.RaftAddr}, {"HTTP_ADDR", c.HTTPAddr}, {"RAFT_ADVERTISE_ADDR", c.RaftAdvertise()}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return varErr(a.name, "must be host:port, got %q", a.v)
		}
	}
	if host, _, _ := net.SplitHostPort(c.RaftAdvertise()); host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return varErr("RAFT_ADVERTISE_ADDR", "must be an address other nodes can dial; set it when RAFT_ADDR is a wildcard (%q)", c.RaftAddr)
	}
	peers, err := c.PeerList()
	if err != nil {
		return err
	}
	if len(peers) > 0 && !slices.ContainsFunc(peers, func(p node.Peer) bool { return p.ID == c.NodeID }) {
		return varErr("PEERS", "must include this node's id %q", c.NodeID)
	}
	if !c.Dev && len(c.APITokens) == 0 {
		return varErr("API_TOKENS", "must list at least one token (or set %s_DEV=true for a dev node without auth)", Prefix)
	}
	return nil
}

func (c Config) validateDurations() error {
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"SNAPSHOT_DELAY", c.SnapshotDelay, 0}, {"APPLY_TIMEOUT", c.ApplyTimeout, time.Millisecond},
		// A follower always waits for an election a little (the API's
		// zero means its 5 s default), and a publisher's first retry comes
		// after 100 ms, under which a cap would be replaced by 30 s.
		{"LEADER_WAIT", c.LeaderWait, time.Millisecond}, {"RECEIPT_TIMEOUT", c.ReceiptTimeout, time.Millisecond},
		{"WAIT_ALL_TIMEOUT", c.WaitAllTimeout, time.Millisecond}, {"CONSUL_TIMEOUT", c.ConsulTimeout, time.Millisecond},
		{"ZK_TIMEOUT", c.ZKTimeout, time.Millisecond}, {"STORE_RETRY_MAX", c.StoreRetryMax, 100 * time.Millisecond},
		{"DRIFT_CHECK_INTERVAL", c.DriftCheckInterval, 0},
	} {
		if d.v < d.min {
			return varErr(d.name, "must be at least %s, got %s", d.min, d.v)
		}
	}
	return nil
}

func (c Config) validateLogging() error {
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return varErr("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return varErr("LOG_FORMAT", "must be text or json, got %q", c.LogFormat)
	}
	return nil
}

// PeerList parses PEERS. In dev mode without PEERS the node is its own peer.
func (c Config) PeerList() ([]node.Peer, error) {
	if strings.TrimSpace(c.Peers) == "" {
		if c.Dev {
			httpAddr := c.HTTPAddr
			if c.HTTPCertFile != "" {
				httpAddr = "https://" + httpAddr
			}
			return []node.Peer{{ID: c.NodeID, RaftAddr: c.RaftAdvertise(), HTTPAddr: httpAddr}}, nil
		}
		return nil, nil
	}
	var out []node.Peer
	seen := map[string]bool{}
	for _, item := range strings.Split(c.Peers, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) != 3 || parts[0] == "" {
			return nil, varErr("PEERS", "entry %q must be id=raftaddr=httpaddr", item)
		}
		httpHost := strings.TrimPrefix(strings.TrimPrefix(parts[2], "http://"), "https://")
		for _, a := range []string{parts[1], httpHost} {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, varErr("PEERS", "entry %q: %q must be host:port", item, a)
			}
		}
		if seen[parts[0]] {
			return nil, varErr("PEERS", "id %q appears twice", parts[0])
		}
		seen[parts[0]] = true
		out = append(out, node.Peer{ID: parts[0], RaftAddr: parts[1], HTTPAddr: parts[2]})
	}
	return out, nil
}

// RaftAdvertise returns the raft address other nodes dial.
func (c Config) RaftAdvertise() string {
	if c.RaftAdvertiseAddr != "" {
		return c.RaftAdvertiseAddr
	}
	return c.RaftAddr
}

// ShouldBootstrap reports whether to bootstrap on first start.
func (c Config) ShouldBootstrap() bool {
	return c.Bootstrap || (c.Dev && strings.TrimSpace(c.Peers) == "")
}

func (c Config) validateStores() error {
	if c.ConsulScheme != "http" && c.ConsulScheme != "https" {
		return varErr("CONSUL_SCHEME", "must be http or https, got %q", c.ConsulScheme)
	}
	switch c.ConsulKVStoreProvider {
	case "consul", "consul-txn", "consul_txn":
	default:
		return varErr("CONSUL_KV_STORE_PROVIDER", "must be consul or consul-txn, got %q", c.ConsulKVStoreProvider)
	}
	if c.ConsulCrossDataCenterDistribution && c.ConsulAddress == "" {
		return varErr("CONSUL_CROSS_DATA_CENTER_DISTRIBUTION", "needs %s_CONSUL_ADDRESS: the leader lists datacenters from its Consul", Prefix)
	}
	if c.ConsulSweepInterval < time.Second {
		return varErr("CONSUL_SWEEP_INTERVAL", "must be at least 1s, got %s", c.ConsulSweepInterval)
	}
	if c.ConsulSweepConcurrency < 1 {
		return varErr("CONSUL_SWEEP_CONCURRENCY", "must be at least 1, got %d", c.ConsulSweepConcurrency)
	}
	if c.ConsulMaxKVsPerTransaction < 0 {
		return varErr("CONSUL_MAX_KVS_PER_TRANSACTION", "must not be negative, got %d", c.ConsulMaxKVsPerTransaction)
	}
	if (c.ConsulCertFile == "") != (c.ConsulKeyFile == "") {
		return varErr("CONSUL_CERT_FILE", "and %s_CONSUL_KEY_FILE must be set together", Prefix)
	}
	if user, _, ok := strings.Cut(c.ZKAuth, ":"); c.ZKAuth != "" && (!ok || user == "") {
		// Never echo the value: it is a secret.
		return varErr("ZK_AUTH", "must be user:password with a non-empty user")
	}
	if c.ZKChroot != "" && !strings.HasPrefix(c.ZKChroot, "/") {
		return varErr("ZK_CHROOT", "must start with '/', got %q", c.ZKChroot)
	}
	if _, err := zkkv.NormalizeChroot(c.ZKChroot); err != nil {
		return varErr("ZK_CHROOT", "%v", err)
	}
	if c.ZKAddress != "" {
		if _, err := zkkv.ParseServers(c.ZKAddress); err != nil {
			return varErr("ZK_ADDRESS", "%v", err)
		}
	}
	return nil
}
