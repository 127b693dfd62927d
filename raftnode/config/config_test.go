package config_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/raftnode/config"
	"github.com/masterkv/masterkv/raftnode/node"
)

// varNames returns the variable names of Config without the prefix, read
// from its envconfig tags so the list cannot fall behind the struct.
func varNames() []string {
	typ := reflect.TypeFor[config.Config]()
	var out []string
	for i := range typ.NumField() {
		if tag := typ.Field(i).Tag.Get("envconfig"); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

// clearEnv unsets, for the duration of the test, every MASTERKV_ variable
// and the unprefixed name of each setting, so the test sees only what it
// sets.
func clearEnv(t *testing.T) {
	t.Helper()
	keys := map[string]bool{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") {
			keys[k] = true
		}
	}
	for _, n := range varNames() {
		keys[config.Prefix+"_"+n] = true
		keys[n] = true
	}
	for k := range keys {
		t.Setenv(k, "") // restores the old value at cleanup
		if err := os.Unsetenv(k); err != nil {
			t.Fatalf("unset %s: %v", k, err)
		}
	}
}

// setEnv clears the environment, then sets MASTERKV_<name> for each entry.
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	clearEnv(t)
	for k, v := range env {
		t.Setenv(config.Prefix+"_"+k, v)
	}
}

func defaults() config.Config {
	return config.Config{
		NodeID:                 "node1",
		DataDir:                "data",
		RaftAddr:               "127.0.0.1:7000",
		HTTPAddr:               "127.0.0.1:8080",
		APITokens:              []string{"tok"},
		KVClusterMasterPrefix:  "mysql/master",
		WriteEpochKey:          true,
		ResolveIPs:             true,
		SnapshotDelay:          10 * time.Second,
		ApplyTimeout:           10 * time.Second,
		LeaderWait:             5 * time.Second,
		ReceiptTimeout:         5 * time.Second,
		WaitAllTimeout:         10 * time.Second,
		ConsulScheme:           "http",
		ConsulKVStoreProvider:  "consul",
		ConsulTimeout:          5 * time.Second,
		ZKTimeout:              5 * time.Second,
		ConsulSweepInterval:    time.Minute,
		ConsulSweepConcurrency: 8,
		StoreRetryMax:          30 * time.Second,
		DriftCheckInterval:     time.Minute,
		ReloadInterval:         10 * time.Second,
		LogLevel:               "info",
		LogFormat:              "text",
	}
}

func TestLoadDefaults(t *testing.T) {
	setEnv(t, map[string]string{"API_TOKENS": "tok"})
	got, err := config.Load()
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if want := defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
	}
	if got, want := got.RaftAdvertise(), "127.0.0.1:7000"; got != want {
		t.Errorf("RaftAdvertise() = %q, want %q", got, want)
	}
	if peers, err := got.PeerList(); err != nil || peers != nil {
		t.Errorf("PeerList() = %v, %v, want nil, nil", peers, err)
	}
	if got.ShouldBootstrap() {
		t.Errorf("ShouldBootstrap() = true, want false")
	}
}

func TestLoadEveryVariable(t *testing.T) {
	setEnv(t, map[string]string{
		"NODE_ID":                               "n2",
		"DATA_DIR":                              "/var/lib/masterkv",
		"RAFT_ADDR":                             "0.0.0.0:7100",
		"RAFT_ADVERTISE_ADDR":                   "10.0.0.2:7100",
		"HTTP_ADDR":                             ":8180",
		"PEERS":                                 "n1=10.0.0.1:7100=https://10.0.0.1:8180,n2=10.0.0.2:7100=https://10.0.0.2:8180",
		"BOOTSTRAP":                             "true",
		"DEV":                                   "false",
		"API_TOKENS":                            " a , b,,c ",
		"KV_CLUSTER_MASTER_PREFIX":              "kv/masters",
		"WRITE_EPOCH_KEY":                       "false",
		"RESOLVE_IPS":                           "false",
		"ALLOW_LOOPBACK":                        "true",
		"SNAPSHOT_DELAY":                        "0s",
		"APPLY_TIMEOUT":                         "1ms",
		"LEADER_WAIT":                           "1ms",
		"RECEIPT_TIMEOUT":                       "2s",
		"WAIT_ALL_TIMEOUT":                      "3s",
		"CONSUL_ADDRESS":                        "127.0.0.1:8500",
		"CONSUL_SCHEME":                         "https",
		"CONSUL_ACL_TOKEN":                      "secret-token",
		"CONSUL_DATACENTER":                     "dc2",
		"CONSUL_KV_STORE_PROVIDER":              "consul-txn",
		"CONSUL_MAX_KVS_PER_TRANSACTION":        "64",
		"CONSUL_CA_FILE":                        "/ca.pem",
		"CONSUL_CERT_FILE":                      "/c.pem",
		"CONSUL_KEY_FILE":                       "/k.pem",
		"CONSUL_TLS_SERVER_NAME":                "consul.local",
		"CONSUL_TIMEOUT":                        "4s",
		"CONSUL_CROSS_DATA_CENTER_DISTRIBUTION": "true",
		"CONSUL_SWEEP_INTERVAL":                 "30s",
		"CONSUL_SWEEP_CONCURRENCY":              "3",
		"ZK_ADDRESS":                            "zk1,zk2:12181",
		"ZK_CHROOT":                             "/masterkv",
		"ZK_AUTH":                               "u:p",
		"ZK_TIMEOUT":                            "6s",
		"STORE_RETRY_MAX":                       "7s",
		"DRIFT_CHECK_INTERVAL":                  "0s",
		"DRIFT_REPAIR":                          "true",
		"RAFT_TLS_CERT_FILE":                    "/tls/node.crt",
		"RAFT_TLS_KEY_FILE":                     "/tls/node.key",
		"RAFT_TLS_CA_FILE":                      "/tls/ca.crt",
		"HTTP_TLS_CERT_FILE":                    "/tls/api.crt",
		"HTTP_TLS_KEY_FILE":                     "/tls/api.key",
		"HTTP_TLS_CLIENT_CA_FILE":               "/tls/clients.crt",
		"HTTP_TLS_CA_FILE":                      "/tls/ca.crt",
		"TLS_RELOAD_INTERVAL":                   "1m",
		"LOG_LEVEL":                             "DEBUG",
		"LOG_FORMAT":                            "json",
	})
	got, err := config.Load()
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	want := config.Config{
		NodeID: "n2", DataDir: "/var/lib/masterkv", RaftAddr: "0.0.0.0:7100", RaftAdvertiseAddr: "10.0.0.2:7100",
		HTTPAddr: ":8180", Peers: "n1=10.0.0.1:7100=https://10.0.0.1:8180,n2=10.0.0.2:7100=https://10.0.0.2:8180",
		Bootstrap: true, APITokens: []string{"a", "b", "c"}, KVClusterMasterPrefix: "kv/masters",
		AllowLoopback: true, ApplyTimeout: time.Millisecond, LeaderWait: time.Millisecond, LogLevel: "DEBUG", LogFormat: "json",
		ReceiptTimeout: 2 * time.Second, WaitAllTimeout: 3 * time.Second,
		ConsulAddress: "127.0.0.1:8500", ConsulScheme: "https", ConsulACLToken: "secret-token",
		ConsulDatacenter: "dc2", ConsulKVStoreProvider: "consul-txn", ConsulMaxKVsPerTransaction: 64,
		ConsulCAFile: "/ca.pem", ConsulCertFile: "/c.pem", ConsulKeyFile: "/k.pem", ConsulTLSServerName: "consul.local",
		ConsulTimeout: 4 * time.Second, ConsulCrossDataCenterDistribution: true,
		ConsulSweepInterval: 30 * time.Second, ConsulSweepConcurrency: 3, ZKAddress: "zk1,zk2:12181", ZKChroot: "/masterkv", ZKAuth: "u:p",
		ZKTimeout: 6 * time.Second, StoreRetryMax: 7 * time.Second, DriftRepair: true,
		RaftCertFile: "/tls/node.crt", RaftKeyFile: "/tls/node.key", RaftCAFile: "/tls/ca.crt", ReloadInterval: time.Minute,
		HTTPCertFile: "/tls/api.crt", HTTPKeyFile: "/tls/api.key", HTTPClientCAFile: "/tls/clients.crt", HTTPCAFile: "/tls/ca.crt",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
	}
	if got, want := got.RaftAdvertise(), "10.0.0.2:7100"; got != want {
		t.Errorf("RaftAdvertise() = %q, want %q", got, want)
	}
}

// The settings come from MASTERKV_ variables only: a LOG_LEVEL or DEV meant
// for another program in the same environment must not change them.
func TestLoadIgnoresUnprefixedVariables(t *testing.T) {
	tests := []struct{ name, value string }{
		{"NODE_ID", "other"},
		{"DATA_DIR", "/elsewhere"},
		{"DEV", "true"},
		{"PEERS", "x=1.2.3.4:1=1.2.3.4:2"},
		{"LOG_LEVEL", "trace"},
		{"API_TOKENS", "leaked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, map[string]string{"API_TOKENS": "tok"})
			if tt.name == "API_TOKENS" {
				clearEnv(t)
				t.Setenv(config.Prefix+"_DEV", "true")
			}
			t.Setenv(tt.name, tt.value)
			got, err := config.Load()
			if tt.name == "API_TOKENS" {
				if err != nil || got.APITokens != nil {
					t.Errorf("Load() with %s=%q = tokens %q, %v, want no tokens", tt.name, tt.value, got.APITokens, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() with %s=%q error = %v, want the defaults", tt.name, tt.value, err)
			}
			if want := defaults(); !reflect.DeepEqual(got, want) {
				t.Errorf("Load() with %s=%q =\n%+v\nwant the defaults\n%+v", tt.name, tt.value, got, want)
			}
		})
	}
}

var varInError = regexp.MustCompile(config.Prefix + `_[A-Z_]+`)

// checkVarErr fails unless err is a config error whose first variable is
// MASTERKV_<name>.
func checkVarErr(t *testing.T, err error, name string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load() = nil error, want one naming %s_%s", config.Prefix, name)
	}
	if !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("error %q lacks the prefix %q", err, "config: ")
	}
	if got, want := varInError.FindString(err.Error()), config.Prefix+"_"+name; got != want {
		t.Errorf("error %q names %q first, want %q", err, got, want)
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"empty node id", map[string]string{"NODE_ID": ""}, "NODE_ID"},
		{"node id with =", map[string]string{"NODE_ID": "a=b"}, "NODE_ID"},
		{"node id with comma", map[string]string{"NODE_ID": "a,b"}, "NODE_ID"},
		{"node id with space", map[string]string{"NODE_ID": "a b"}, "NODE_ID"},
		{"node id with tab", map[string]string{"NODE_ID": "a\tb"}, "NODE_ID"},
		{"empty data dir", map[string]string{"DATA_DIR": ""}, "DATA_DIR"},
		{"raft addr without port", map[string]string{"RAFT_ADDR": "127.0.0.1"}, "RAFT_ADDR"},
		{"raft addr garbage", map[string]string{"RAFT_ADDR": "nope"}, "RAFT_ADDR"},
		{"empty raft addr", map[string]string{"RAFT_ADDR": ""}, "RAFT_ADDR"},
		{"http addr without port", map[string]string{"HTTP_ADDR": "localhost"}, "HTTP_ADDR"},
		{"advertise addr garbage", map[string]string{"RAFT_ADVERTISE_ADDR": "nope"}, "RAFT_ADVERTISE_ADDR"},
		{"wildcard raft addr without advertise", map[string]string{"RAFT_ADDR": "0.0.0.0:7000"}, "RAFT_ADVERTISE_ADDR"},
		{"empty host raft addr without advertise", map[string]string{"RAFT_ADDR": ":7000"}, "RAFT_ADVERTISE_ADDR"},
		{"ipv6 wildcard raft addr without advertise", map[string]string{"RAFT_ADDR": "[::]:7000"}, "RAFT_ADVERTISE_ADDR"},
		{"wildcard advertise", map[string]string{"RAFT_ADDR": "0.0.0.0:7000", "RAFT_ADVERTISE_ADDR": "0.0.0.0:7000"}, "RAFT_ADVERTISE_ADDR"},
		{"advertise without host", map[string]string{"RAFT_ADVERTISE_ADDR": ":7000"}, "RAFT_ADVERTISE_ADDR"},
		{"bad peers", map[string]string{"PEERS": "node1=127.0.0.1:7000"}, "PEERS"},
		{"blank tokens", map[string]string{"API_TOKENS": " , ,"}, "API_TOKENS"},
		{"negative snapshot delay", map[string]string{"SNAPSHOT_DELAY": "-1s"}, "SNAPSHOT_DELAY"},
		{"snapshot delay not a duration", map[string]string{"SNAPSHOT_DELAY": "soon"}, "SNAPSHOT_DELAY"},
		{"zero apply timeout", map[string]string{"APPLY_TIMEOUT": "0s"}, "APPLY_TIMEOUT"},
		{"sub-millisecond apply timeout", map[string]string{"APPLY_TIMEOUT": "500us"}, "APPLY_TIMEOUT"},
		{"apply timeout without unit", map[string]string{"APPLY_TIMEOUT": "10"}, "APPLY_TIMEOUT"},
		{"negative leader wait", map[string]string{"LEADER_WAIT": "-1ms"}, "LEADER_WAIT"},
		{"unknown log level", map[string]string{"LOG_LEVEL": "trace"}, "LOG_LEVEL"},
		{"empty log level", map[string]string{"LOG_LEVEL": ""}, "LOG_LEVEL"},
		{"unknown log format", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{"consul scheme", map[string]string{"CONSUL_SCHEME": "ftp"}, "CONSUL_SCHEME"},
		{"consul provider typo", map[string]string{"CONSUL_KV_STORE_PROVIDER": "consul-tx"}, "CONSUL_KV_STORE_PROVIDER"},
		{"negative txn size", map[string]string{"CONSUL_MAX_KVS_PER_TRANSACTION": "-1"}, "CONSUL_MAX_KVS_PER_TRANSACTION"},
		{"cert without key", map[string]string{"CONSUL_CERT_FILE": "/c.pem"}, "CONSUL_CERT_FILE"},
		{"zk auth without colon", map[string]string{"ZK_AUTH": "secretpassword"}, "ZK_AUTH"},
		{"zk chroot relative", map[string]string{"ZK_CHROOT": "masterkv"}, "ZK_CHROOT"},
		// Refused at load, naming the variable, not when the ZooKeeper
		// store opens.
		{"zk chroot with ..", map[string]string{"ZK_CHROOT": "/masterkv/../other"}, "ZK_CHROOT"},
		// Refused rather than replaced by a default: a retry cap under the
		// publisher's 100 ms first retry would mean 30 s, a leader wait of
		// 0 would mean 5 s.
		{"store retry max under the first retry", map[string]string{"STORE_RETRY_MAX": "50ms"}, "STORE_RETRY_MAX"},
		{"leader wait 0", map[string]string{"LEADER_WAIT": "0s"}, "LEADER_WAIT"},
		{"zk auth without user", map[string]string{"ZK_AUTH": ":password"}, "ZK_AUTH"},
		{"zk address with a bad port", map[string]string{"ZK_ADDRESS": "zk1:notaport"}, "ZK_ADDRESS"},
		{"zero consul timeout", map[string]string{"CONSUL_TIMEOUT": "0s"}, "CONSUL_TIMEOUT"},
		{"cross-dc without consul", map[string]string{"CONSUL_CROSS_DATA_CENTER_DISTRIBUTION": "true"}, "CONSUL_CROSS_DATA_CENTER_DISTRIBUTION"},
		{"sweep interval too short", map[string]string{"CONSUL_SWEEP_INTERVAL": "10ms"}, "CONSUL_SWEEP_INTERVAL"},
		{"sweep concurrency zero", map[string]string{"CONSUL_SWEEP_CONCURRENCY": "0"}, "CONSUL_SWEEP_CONCURRENCY"},
		{"negative drift interval", map[string]string{"DRIFT_CHECK_INTERVAL": "-1s"}, "DRIFT_CHECK_INTERVAL"},
		{"bootstrap not a bool", map[string]string{"BOOTSTRAP": "maybe"}, "BOOTSTRAP"},
		{"dev not a bool", map[string]string{"DEV": "maybe"}, "DEV"},
		{"write epoch key not a bool", map[string]string{"WRITE_EPOCH_KEY": "yes please"}, "WRITE_EPOCH_KEY"},
		{"resolve ips not a bool", map[string]string{"RESOLVE_IPS": "x"}, "RESOLVE_IPS"},
		{"allow loopback not a bool", map[string]string{"ALLOW_LOOPBACK": "x"}, "ALLOW_LOOPBACK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"API_TOKENS": "tok"}
			for k, v := range tt.env {
				env[k] = v
			}
			setEnv(t, env)
			got, err := config.Load()
			checkVarErr(t, err, tt.wantVar)
			if !reflect.DeepEqual(got, config.Config{}) {
				t.Errorf("Load() returned %+v with its error, want the zero Config", got)
			}
		})
	}
}

func TestLoadTokens(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []string
		wantErr bool
	}{
		{name: "non-dev without tokens", env: map[string]string{}, wantErr: true},
		{name: "non-dev with empty tokens", env: map[string]string{"API_TOKENS": ""}, wantErr: true},
		{name: "non-dev explicitly", env: map[string]string{"DEV": "false"}, wantErr: true},
		{name: "non-dev with a token", env: map[string]string{"API_TOKENS": "t1"}, want: []string{"t1"}},
		{name: "rotation", env: map[string]string{"API_TOKENS": "old,new"}, want: []string{"old", "new"}},
		{name: "dev without tokens", env: map[string]string{"DEV": "true"}},
		{name: "dev with tokens", env: map[string]string{"DEV": "true", "API_TOKENS": "t1"}, want: []string{"t1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			got, err := config.Load()
			if tt.wantErr {
				checkVarErr(t, err, "API_TOKENS")
				if err != nil && !strings.Contains(err.Error(), config.Prefix+"_DEV=true") {
					t.Errorf("error %q does not point at %s_DEV=true", err, config.Prefix)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			if !reflect.DeepEqual(got.APITokens, tt.want) {
				t.Errorf("APITokens = %q, want %q", got.APITokens, tt.want)
			}
		})
	}
}

func TestPeers(t *testing.T) {
	three := "n1=10.0.0.1:7000=10.0.0.1:8080,n2=10.0.0.2:7000=10.0.0.2:8080,n3=10.0.0.3:7000=10.0.0.3:8080"
	threePeers := []node.Peer{
		{ID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "10.0.0.1:8080"},
		{ID: "n2", RaftAddr: "10.0.0.2:7000", HTTPAddr: "10.0.0.2:8080"},
		{ID: "n3", RaftAddr: "10.0.0.3:7000", HTTPAddr: "10.0.0.3:8080"},
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    []node.Peer
		wantErr bool
	}{
		{name: "three peers", env: map[string]string{"NODE_ID": "n2", "PEERS": three}, want: threePeers},
		{name: "spaces around entries", env: map[string]string{"NODE_ID": "n1",
			"PEERS": " n1=10.0.0.1:7000=10.0.0.1:8080 ,\tn2=10.0.0.2:7000=10.0.0.2:8080"},
			want: threePeers[:2]},
		{name: "single peer", env: map[string]string{"PEERS": "node1=db:7000=db:8080"},
			want: []node.Peer{{ID: "node1", RaftAddr: "db:7000", HTTPAddr: "db:8080"}}},
		{name: "http address with scheme", env: map[string]string{"NODE_ID": "n1",
			"PEERS": "n1=10.0.0.1:7000=http://10.0.0.1:8080,n2=10.0.0.2:7000=https://n2.example.com:8443"},
			want: []node.Peer{
				{ID: "n1", RaftAddr: "10.0.0.1:7000", HTTPAddr: "http://10.0.0.1:8080"},
				{ID: "n2", RaftAddr: "10.0.0.2:7000", HTTPAddr: "https://n2.example.com:8443"},
			}},
		{name: "ipv6 addresses", env: map[string]string{"PEERS": "node1=[fd00::1]:7000=[fd00::1]:8080"},
			want: []node.Peer{{ID: "node1", RaftAddr: "[fd00::1]:7000", HTTPAddr: "[fd00::1]:8080"}}},
		{name: "dev without peers is its own peer", env: map[string]string{"DEV": "true"},
			want: []node.Peer{{ID: "node1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8080"}}},
		{name: "dev self peer uses the advertise address",
			env:  map[string]string{"DEV": "true", "NODE_ID": "d", "RAFT_ADDR": "0.0.0.0:7000", "RAFT_ADVERTISE_ADDR": "10.0.0.9:7000", "HTTP_ADDR": "10.0.0.9:8080"},
			want: []node.Peer{{ID: "d", RaftAddr: "10.0.0.9:7000", HTTPAddr: "10.0.0.9:8080"}}},
		{name: "dev with peers", env: map[string]string{"DEV": "true", "NODE_ID": "n3", "PEERS": three}, want: threePeers},
		{name: "no peers", env: map[string]string{}, want: nil},
		{name: "duplicate id", env: map[string]string{"NODE_ID": "n1",
			"PEERS": "n1=10.0.0.1:7000=10.0.0.1:8080,n1=10.0.0.2:7000=10.0.0.2:8080"}, wantErr: true},
		{name: "missing self", env: map[string]string{"NODE_ID": "n9", "PEERS": three}, wantErr: true},
		{name: "two parts", env: map[string]string{"PEERS": "node1=10.0.0.1:7000"}, wantErr: true},
		{name: "four parts", env: map[string]string{"PEERS": "node1=10.0.0.1:7000=10.0.0.1:8080=x"}, wantErr: true},
		{name: "empty id", env: map[string]string{"PEERS": "=10.0.0.1:7000=10.0.0.1:8080"}, wantErr: true},
		{name: "raft address without port", env: map[string]string{"PEERS": "node1=10.0.0.1=10.0.0.1:8080"}, wantErr: true},
		{name: "http address without port", env: map[string]string{"PEERS": "node1=10.0.0.1:7000=10.0.0.1"}, wantErr: true},
		{name: "empty entry", env: map[string]string{"PEERS": "node1=10.0.0.1:7000=10.0.0.1:8080,"}, wantErr: true},
		{name: "colon separated", env: map[string]string{"PEERS": "node1:10.0.0.1:7000:10.0.0.1:8080"}, wantErr: true},
		// The scheme is tolerated on the HTTP address only: raft dials a
		// plain host:port.
		{name: "raft address with scheme", env: map[string]string{"PEERS": "node1=http://10.0.0.1:7000=10.0.0.1:8080"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"API_TOKENS": "tok"}
			for k, v := range tt.env {
				env[k] = v
			}
			setEnv(t, env)
			cfg, err := config.Load()
			if tt.wantErr {
				checkVarErr(t, err, "PEERS")
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			got, err := cfg.PeerList()
			if err != nil {
				t.Fatalf("PeerList() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PeerList() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestShouldBootstrap(t *testing.T) {
	peers := "node1=10.0.0.1:7000=10.0.0.1:8080"
	tests := []struct {
		name string
		cfg  config.Config
		want bool
	}{
		{"plain node", config.Config{}, false},
		{"plain node with peers", config.Config{Peers: peers}, false},
		{"bootstrap", config.Config{Bootstrap: true}, true},
		{"bootstrap with peers", config.Config{Bootstrap: true, Peers: peers}, true},
		{"dev alone", config.Config{Dev: true}, true},
		{"dev with peers", config.Config{Dev: true, Peers: peers}, false},
		{"dev with peers and bootstrap", config.Config{Dev: true, Peers: peers, Bootstrap: true}, true},
		// PeerList treats blank PEERS as unset, so the dev node is a group
		// of one and must bootstrap it.
		{"dev with blank peers", config.Config{Dev: true, Peers: "  "}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.ShouldBootstrap(); got != tt.want {
				t.Errorf("ShouldBootstrap() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInvalidSecretsAreNotEchoed(t *testing.T) {
	setEnv(t, map[string]string{"API_TOKENS": "tok", "ZK_AUTH": "hunter2-no-colon"})
	_, err := config.Load()
	if err == nil {
		t.Fatal("Load() accepted ZK_AUTH without a colon")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q echoes the ZK_AUTH secret", err)
	}
}
