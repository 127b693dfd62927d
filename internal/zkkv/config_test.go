package zkkv_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/zkkv"
)

func TestParseServers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "srv-a", want: []string{"srv-a:2181"}},
		{in: "srv-a,srv-b:12181", want: []string{"srv-a:2181", "srv-b:12181"}},
		{in: "srv-a,srv-b:12181,srv-c", want: []string{"srv-a:2181", "srv-b:12181", "srv-c:2181"}},
		{in: " srv-a:2181 , srv-b ", want: []string{"srv-a:2181", "srv-b:2181"}},
		{in: "10.0.0.1,10.0.0.2:2182", want: []string{"10.0.0.1:2181", "10.0.0.2:2182"}},
		{in: "::1", want: []string{"[::1]:2181"}},
		{in: "[::1]", want: []string{"[::1]:2181"}},
		{in: "[fe80::1]:12181", want: []string{"[fe80::1]:12181"}},
		{in: "", wantErr: true},
		{in: "  ", wantErr: true},
		{in: "srv-a,", wantErr: true},
		{in: "srv-a,,srv-b", wantErr: true},
		{in: "srv-a:", wantErr: true},
		{in: ":2181", wantErr: true},
		{in: "srv-a:http", wantErr: true},
		{in: "srv-a:0", wantErr: true},
		{in: "srv-a:65536", wantErr: true},
		{in: "srv-a:1:2", wantErr: true},
		{in: "[srv-a", wantErr: true},
		{in: "[srv-a]", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := zkkv.ParseServers(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseServers(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseServers(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseServers(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeChroot(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "", want: ""},
		{in: "/", want: ""},
		{in: "///", want: ""},
		{in: "masterkv", want: "/masterkv"},
		{in: "/masterkv", want: "/masterkv"},
		{in: "masterkv/", want: "/masterkv"},
		{in: "//masterkv//", want: "/masterkv"},
		{in: "/a/b", want: "/a/b"},
		{in: "/a//b", wantErr: true},
		{in: "/a/./b", wantErr: true},
		{in: "/a/..", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := zkkv.NormalizeChroot(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NormalizeChroot(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("NormalizeChroot(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeChroot(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	const secret = "s3cret-pw"
	tests := []struct {
		name    string
		cfg     zkkv.Config
		wantErr bool
	}{
		{name: "minimal", cfg: zkkv.Config{Servers: []string{"srv-a"}}},
		{name: "full", cfg: zkkv.Config{Servers: []string{"srv-a", "srv-b:12181"}, Chroot: "/masterkv", Auth: "masterkv:" + secret}},
		{name: "password may hold colons", cfg: zkkv.Config{Servers: []string{"srv-a"}, Auth: "masterkv:a:b"}},
		{name: "no servers", cfg: zkkv.Config{}, wantErr: true},
		{name: "bad server", cfg: zkkv.Config{Servers: []string{"srv-a:x"}}, wantErr: true},
		{name: "bad chroot", cfg: zkkv.Config{Servers: []string{"srv-a"}, Chroot: "/a//b"}, wantErr: true},
		{name: "auth without user", cfg: zkkv.Config{Servers: []string{"srv-a"}, Auth: ":" + secret}, wantErr: true},
		{name: "auth without colon", cfg: zkkv.Config{Servers: []string{"srv-a"}, Auth: secret}, wantErr: true},
		{name: "negative timeout", cfg: zkkv.Config{Servers: []string{"srv-a"}, OpTimeout: -1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("Validate() error %q reveals the auth secret", err)
			}
			if tt.wantErr {
				if s, newErr := zkkv.New(tt.cfg); newErr == nil {
					s.Close()
					t.Errorf("New() accepted a config that Validate rejects")
				}
			}
		})
	}
}
