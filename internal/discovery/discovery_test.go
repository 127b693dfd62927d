package discovery_test

import (
	"reflect"
	"testing"

	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/master"
)

func TestNormalizePrefix(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"/", "/"},
		{"", "/"},
		{"//", "/"},
		{"mysql/master", "mysql/master/"},
		{"mysql/master/", "mysql/master/"},
		{"some/prefix///", "some/prefix/"},
		{"/abs/prefix", "/abs/prefix/"},
		{"/abs/prefix//", "/abs/prefix/"},
		{"a//b", "a//b/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := discovery.NormalizePrefix(tt.in); got != tt.want {
				t.Errorf("NormalizePrefix(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLayoutPrefix(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{discovery.DefaultPrefix, "mysql/master/"},
		{"x///", "x/"},
		{"", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := discovery.NewLayout(tt.in, false).Prefix(); got != tt.want {
				t.Errorf("NewLayout(%q).Prefix() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct {
		name string
		m    master.Master
		want string
	}{
		{"name", master.Master{Host: "db1.example.com", Port: 3306}, "db1.example.com:3306"},
		{"ipv4", master.Master{Host: "10.0.0.5", Port: 3307}, "10.0.0.5:3307"},
		// orchestrator writes IPv6 literals without brackets.
		{"ipv6", master.Master{Host: "fd00::5", Port: 3306}, "fd00::5:3306"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.HostPort(); got != tt.want {
				t.Errorf("HostPort() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestKeysPerCluster(t *testing.T) {
	tests := []struct {
		writeEpoch bool
		want       int
	}{
		{false, 5},
		{true, 6},
	}
	for _, tt := range tests {
		l := discovery.NewLayout(discovery.DefaultPrefix, tt.writeEpoch)
		if got := l.KeysPerCluster(); got != tt.want {
			t.Errorf("KeysPerCluster() with writeEpoch=%v = %d, want %d", tt.writeEpoch, got, tt.want)
		}
		if got := len(l.Pairs("a", master.Master{Host: "h", Port: 1}, 1)); got != tt.want {
			t.Errorf("len(Pairs()) with writeEpoch=%v = %d, want KeysPerCluster() = %d", tt.writeEpoch, got, tt.want)
		}
	}
}

func TestKeys(t *testing.T) {
	l := discovery.NewLayout("some/prefix///", true)
	if got, want := l.ClusterKey("a"), "some/prefix/a"; got != want {
		t.Errorf("ClusterKey() = %q, want %q", got, want)
	}
	if got, want := l.EpochKey("a"), "some/prefix/a/epoch"; got != want {
		t.Errorf("EpochKey() = %q, want %q", got, want)
	}
}

func TestPairs(t *testing.T) {
	full := master.Master{Host: "db1.example.com", Port: 3306, IPv4: "10.0.0.5", IPv6: "fd00::5"}
	tests := []struct {
		name       string
		prefix     string
		writeEpoch bool
		alias      string
		m          master.Master
		epoch      uint64
		want       []discovery.KVPair
	}{
		{
			name: "orchestrator layout without epoch", prefix: discovery.DefaultPrefix,
			alias: "main", m: full, epoch: 42,
			want: []discovery.KVPair{
				{Key: "mysql/master/main", Value: "db1.example.com:3306"},
				{Key: "mysql/master/main/hostname", Value: "db1.example.com"},
				{Key: "mysql/master/main/port", Value: "3306"},
				{Key: "mysql/master/main/ipv4", Value: "10.0.0.5"},
				{Key: "mysql/master/main/ipv6", Value: "fd00::5"},
			},
		},
		{
			name: "epoch key last", prefix: discovery.DefaultPrefix, writeEpoch: true,
			alias: "main", m: full, epoch: 42,
			want: []discovery.KVPair{
				{Key: "mysql/master/main", Value: "db1.example.com:3306"},
				{Key: "mysql/master/main/hostname", Value: "db1.example.com"},
				{Key: "mysql/master/main/port", Value: "3306"},
				{Key: "mysql/master/main/ipv4", Value: "10.0.0.5"},
				{Key: "mysql/master/main/ipv6", Value: "fd00::5"},
				{Key: "mysql/master/main/epoch", Value: "42"},
			},
		},
		{
			name: "unknown addresses are empty values", prefix: "kv//", writeEpoch: true,
			alias: "db-1:3306", m: master.Master{Host: "db-1", Port: 3306}, epoch: 18446744073709551615,
			want: []discovery.KVPair{
				{Key: "kv/db-1:3306", Value: "db-1:3306"},
				{Key: "kv/db-1:3306/hostname", Value: "db-1"},
				{Key: "kv/db-1:3306/port", Value: "3306"},
				{Key: "kv/db-1:3306/ipv4", Value: ""},
				{Key: "kv/db-1:3306/ipv6", Value: ""},
				{Key: "kv/db-1:3306/epoch", Value: "18446744073709551615"},
			},
		},
		{
			name: "ipv6 host", prefix: "/", writeEpoch: false,
			alias: "c6", m: master.Master{Host: "fd00::7", Port: 3306, IPv6: "fd00::7"},
			want: []discovery.KVPair{
				{Key: "/c6", Value: "fd00::7:3306"},
				{Key: "/c6/hostname", Value: "fd00::7"},
				{Key: "/c6/port", Value: "3306"},
				{Key: "/c6/ipv4", Value: ""},
				{Key: "/c6/ipv6", Value: "fd00::7"},
			},
		},
		{name: "empty alias", prefix: discovery.DefaultPrefix, writeEpoch: true, alias: "", m: full, epoch: 1, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := discovery.NewLayout(tt.prefix, tt.writeEpoch).Pairs(tt.alias, tt.m, tt.epoch)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Pairs(%q) =\n%v\nwant\n%v", tt.alias, got, tt.want)
			}
		})
	}
}

func TestZKPath(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"mysql/master/a", "/mysql/master/a"},
		{"/mysql/master/a", "/mysql/master/a"},
		{"//x", "/x"},
		{"///x/y", "/x/y"},
		{"", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := discovery.ZKPath(tt.in); got != tt.want {
				t.Errorf("ZKPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLayoutContract(t *testing.T) {
	m := master.Master{Host: "h", Port: 1}
	for _, tc := range []struct {
		name      string
		pairs     []discovery.KVPair
		wantEpoch int
		wantOK    bool
	}{
		{"with epoch", discovery.NewLayout("p", true).Pairs("a", m, 7), 5, true},
		{"strict", discovery.NewLayout("p", false).Pairs("a", m, 7), -1, false},
		{"main only", []discovery.KVPair{{Key: "p/a"}}, -1, false},
		{"other alias's epoch", []discovery.KVPair{{Key: "p/a"}, {Key: "p/ab/epoch"}}, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := discovery.Main(tc.pairs).Key; got != "p/a" {
				t.Errorf("Main().Key = %q, want p/a", got)
			}
			if got, ok := discovery.EpochIndex(tc.pairs); got != tc.wantEpoch || ok != tc.wantOK {
				t.Errorf("EpochIndex() = %d, %v, want %d, %v", got, ok, tc.wantEpoch, tc.wantOK)
			}
		})
	}
	pairs := discovery.NewLayout("p", true).Pairs("a", m, 7)
	if n := testing.AllocsPerRun(100, func() { discovery.EpochIndex(pairs) }); n != 0 {
		t.Errorf("EpochIndex allocates %v times, want 0", n)
	}
}
