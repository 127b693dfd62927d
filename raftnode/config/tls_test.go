package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		{"negative reload interval", map[string]string{"TLS_RELOAD_INTERVAL": "-1s"}, "MASTERKV_TLS_RELOAD_INTERVAL must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"API_TOKENS": "tok"}
			for k, v := range tc.env {
				env[k] = v
			}
			setEnv(t, env)
			c, err := config.Load()
			if err == nil {
				_, err = c.RaftTLS()
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
