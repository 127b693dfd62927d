// Package config loads the raftnode daemon's settings from MASTERKV_*
// environment variables and checks them, naming the variable at fault.
package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/masterkv/masterkv/raftnode/node"
)

// Prefix of every variable.
const Prefix = "MASTERKV"

// Config is the raftnode configuration. README.md lists every variable.
type Config struct {
	NodeID   string `envconfig:"NODE_ID" default:"node1"`
	DataDir  string `envconfig:"DATA_DIR" default:"data"`
	RaftAddr string `envconfig:"RAFT_ADDR" default:"127.0.0.1:7000"`
	// RaftAdvertiseAddr is the raft address other nodes dial; defaults to
	// RaftAddr, which must then not be a wildcard address.
	RaftAdvertiseAddr string `envconfig:"RAFT_ADVERTISE_ADDR"`
	HTTPAddr          string `envconfig:"HTTP_ADDR" default:"127.0.0.1:8080"`
	// Peers is the first membership: id=raftaddr=httpaddr,...
	Peers     string `envconfig:"PEERS"`
	Bootstrap bool   `envconfig:"BOOTSTRAP"`
	// Dev runs a single-node group (unless PEERS is set), bootstraps it and
	// allows running without API tokens.
	Dev       bool     `envconfig:"DEV"`
	APITokens []string `envconfig:"API_TOKENS"`

	KVClusterMasterPrefix string `envconfig:"KV_CLUSTER_MASTER_PREFIX" default:"mysql/master"`
	WriteEpochKey         bool   `envconfig:"WRITE_EPOCH_KEY" default:"true"`
	ResolveIPs            bool   `envconfig:"RESOLVE_IPS" default:"true"`
	AllowLoopback         bool   `envconfig:"ALLOW_LOOPBACK"`

	SnapshotDelay time.Duration `envconfig:"SNAPSHOT_DELAY" default:"10s"`
	ApplyTimeout  time.Duration `envconfig:"APPLY_TIMEOUT" default:"10s"`
	LeaderWait    time.Duration `envconfig:"LEADER_WAIT" default:"5s"`
	LogLevel      string        `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat     string        `envconfig:"LOG_FORMAT" default:"text"`
}

// Load reads the environment and validates the result.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
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
	if len(peers) > 0 {
		self := false
		for _, p := range peers {
			self = self || p.ID == c.NodeID
		}
		if !self {
			return varErr("PEERS", "must include this node's id %q", c.NodeID)
		}
	}
	if !c.Dev && len(c.APITokens) == 0 {
		return varErr("API_TOKENS", "must list at least one token (or set %s_DEV=true for a dev node without auth)", Prefix)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{{"SNAPSHOT_DELAY", c.SnapshotDelay, 0}, {"APPLY_TIMEOUT", c.ApplyTimeout, time.Millisecond}, {"LEADER_WAIT", c.LeaderWait, 0}} {
		if d.v < d.min {
			return varErr(d.name, "must be at least %s, got %s", d.min, d.v)
		}
	}
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
			return []node.Peer{{ID: c.NodeID, RaftAddr: c.RaftAdvertise(), HTTPAddr: c.HTTPAddr}}, nil
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
		for _, a := range parts[1:] {
			if _, _, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")); err != nil {
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
func (c Config) ShouldBootstrap() bool { return c.Bootstrap || (c.Dev && c.Peers == "") }
