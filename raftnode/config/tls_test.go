package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/tlsfiles"
	"github.com/masterkv/masterkv/internal/tlsfiles/tlstest"
	"github.com/masterkv/masterkv/raftnode/config"
)

// TestTLSFiles checks that an unusable TLS setting is refused with its
// variable's name and that no key material reaches the message.
func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "group")
	caPath := ca.WriteCA(t, dir, "ca.crt")
	pair := ca.Issue(t, "n1", "127.0.0.1")
	cert, key := pair.Write(t, dir, "n1")
	strayKey := filepath.Join(dir, "stray.key")
	if err := os.WriteFile(strayKey, ca.Issue(t, "n2").KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" loads; otherwise part of the error
	}{
		{"raft: all three", map[string]string{"RAFT_TLS_CERT_FILE": cert, "RAFT_TLS_KEY_FILE": key, "RAFT_TLS_CA_FILE": caPath}, ""},
		{"raft: no CA", map[string]string{"RAFT_TLS_CERT_FILE": cert, "RAFT_TLS_KEY_FILE": key}, "MASTERKV_RAFT_TLS_CA_FILE must be set"},
		{"raft: CA only", map[string]string{"RAFT_TLS_CA_FILE": caPath}, "MASTERKV_RAFT_TLS_CERT_FILE must be set"},
		{"raft: key of another certificate", map[string]string{"RAFT_TLS_CERT_FILE": cert, "RAFT_TLS_KEY_FILE": strayKey, "RAFT_TLS_CA_FILE": caPath}, "MASTERKV_RAFT_TLS_KEY_FILE key file"},
		{"raft: key as certificate", map[string]string{"RAFT_TLS_CERT_FILE": key, "RAFT_TLS_KEY_FILE": key, "RAFT_TLS_CA_FILE": caPath}, "MASTERKV_RAFT_TLS_CERT_FILE certificate file"},
		{"raft: missing CA", map[string]string{"RAFT_TLS_CERT_FILE": cert, "RAFT_TLS_KEY_FILE": key, "RAFT_TLS_CA_FILE": caPath + ".gone"}, "MASTERKV_RAFT_TLS_CA_FILE CA file"},
		{"http: cert without key", map[string]string{"HTTP_TLS_CERT_FILE": cert}, "MASTERKV_HTTP_TLS_CERT_FILE and MASTERKV_HTTP_TLS_KEY_FILE must be set together"},
		{"http: client CA without a certificate", map[string]string{"HTTP_TLS_CLIENT_CA_FILE": caPath}, "MASTERKV_HTTP_TLS_CLIENT_CA_FILE needs"},
		{"http: plain peer", map[string]string{"HTTP_TLS_CERT_FILE": cert, "HTTP_TLS_KEY_FILE": key, "NODE_ID": "n1", "PEERS": "n1=127.0.0.1:7000=127.0.0.1:8080"}, "MASTERKV_PEERS entry n1: the HTTP address must start with https://"},
		{"http: https peers", map[string]string{"HTTP_TLS_CERT_FILE": cert, "HTTP_TLS_KEY_FILE": key, "HTTP_TLS_CLIENT_CA_FILE": caPath, "HTTP_TLS_CA_FILE": caPath, "NODE_ID": "n1", "PEERS": "n1=127.0.0.1:7000=https://127.0.0.1:8080"}, ""},
		{"http: dev node without PEERS", map[string]string{"HTTP_TLS_CERT_FILE": cert, "HTTP_TLS_KEY_FILE": key, "DEV": "true"}, ""},
		{"http: key of another certificate", map[string]string{"HTTP_TLS_CERT_FILE": cert, "HTTP_TLS_KEY_FILE": strayKey, "DEV": "true"}, "MASTERKV_HTTP_TLS_KEY_FILE key file"},
		{"http: bad client CA", map[string]string{"HTTP_TLS_CERT_FILE": cert, "HTTP_TLS_KEY_FILE": key, "HTTP_TLS_CLIENT_CA_FILE": key, "DEV": "true"}, "MASTERKV_HTTP_TLS_CLIENT_CA_FILE CA file"},
		{"http: bad forward CA", map[string]string{"HTTP_TLS_CA_FILE": key, "DEV": "true"}, "MASTERKV_HTTP_TLS_CA_FILE CA file"},
		{"negative reload interval", map[string]string{"TLS_RELOAD_INTERVAL": "-1s"}, "MASTERKV_TLS_RELOAD_INTERVAL must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"API_TOKENS": "tok"}
			for k, v := range tc.env {
				env[k] = v
			}
			setEnv(t, env)
			c, err := config.Load()
			for _, load := range []func() (*tlsfiles.Store, error){c.RaftTLS, c.HTTPServerTLS, c.ForwardTLS} {
				if err == nil {
					_, err = load()
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "PRIVATE KEY"):
				t.Fatalf("err = %v shows key material", err)
			}
		})
	}
}
