package nodeclient_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/tlsfiles"
	"github.com/masterkv/masterkv/internal/tlsfiles/tlstest"
)

// tlsNode is a node API stand-in over TLS that requires a client
// certificate signed by clientCA and answers 200 to anything.
func tlsNode(t *testing.T, cert, key, clientCA string) string {
	t.Helper()
	files, err := tlsfiles.Load(tlsfiles.Files{Cert: cert, Key: key, CA: clientCA})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	srv.TLS = files.ServerConfig(tls.RequireAndVerifyClientCert)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClientVerifiesNodesAgainstCA(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "group"), tlstest.NewCA(t, "other")
	caPath, otherPath := ca.WriteCA(t, dir, "ca.crt"), other.WriteCA(t, dir, "other.crt")
	nodeCert, nodeKey := ca.Issue(t, "node", "127.0.0.1").Write(t, dir, "node")
	fnCert, fnKey := ca.IssueClient(t, "lambda").Write(t, dir, "lambda")
	url := tlsNode(t, nodeCert, nodeKey, caPath)

	for _, tc := range []struct {
		name               string
		ca, cert, key      string
		wantOK             bool
		wantErrPart, wantV string
	}{
		{name: "CA and client certificate", ca: caPath, cert: fnCert, key: fnKey, wantOK: true},
		{name: "node not signed by the CA", ca: otherPath, cert: fnCert, key: fnKey, wantErrPart: "certificate signed by unknown authority"},
		{name: "no client certificate", ca: caPath, wantErrPart: "certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			c, err := nodeclient.New(nodeclient.Config{
				Nodes: []string{url}, Token: "t", Timeout: 2 * time.Second, ConnectTimeout: time.Second, Attempts: 1,
				CAFile: tc.ca, CertFile: tc.cert, KeyFile: tc.key,
			}, nodeclient.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(t.Context(), nodeclient.Request{Method: http.MethodGet, Path: "/v1/masters", IdempotencyKey: "k"})
			if tc.wantOK {
				if err != nil || resp.Status != http.StatusOK {
					t.Fatalf("Do = %+v, %v; want 200", resp, err)
				}
				return
			}
			if !errors.Is(err, nodeclient.ErrUnavailable) {
				t.Fatalf("Do = %+v, %v; want ErrUnavailable", resp, err)
			}
			if got := logs.String(); !strings.Contains(got, tc.wantErrPart) {
				t.Fatalf("attempt log %q does not name %q", got, tc.wantErrPart)
			}
		})
	}
}

func TestTLSConfigErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "group")
	caPath := ca.WriteCA(t, dir, "ca.crt")
	cert, key := ca.Issue(t, "lambda").Write(t, dir, "lambda")
	base := nodeclient.Config{Nodes: []string{"https://n1:8080"}, Token: "t", Timeout: 12 * time.Second, ConnectTimeout: 2 * time.Second, Attempts: 6}
	for _, tc := range []struct {
		name string
		edit func(*nodeclient.Config)
		want string
	}{
		{"http node with a CA", func(c *nodeclient.Config) { c.Nodes = []string{"http://n1:8080"}; c.CAFile = caPath }, "MASTERKV_NODES entry \"http://n1:8080\" must be an https:// URL"},
		{"cert without key", func(c *nodeclient.Config) { c.CertFile = cert }, "MASTERKV_NODE_CERT_FILE and MASTERKV_NODE_KEY_FILE must be set together"},
		{"missing CA", func(c *nodeclient.Config) { c.CAFile = caPath + ".gone" }, "MASTERKV_NODE_CA_FILE CA file"},
		{"key as CA", func(c *nodeclient.Config) { c.CAFile = key }, "MASTERKV_NODE_CA_FILE CA file"},
		{"key as cert", func(c *nodeclient.Config) { c.CertFile, c.KeyFile = key, key }, "MASTERKV_NODE_CERT_FILE certificate file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			_, err := nodeclient.New(cfg, nodeclient.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: err = %v, want one with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("New: err = %v shows key material", err)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the client's concurrent attempts.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
