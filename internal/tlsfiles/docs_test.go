package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// TestDocumentedCertificates runs the openssl block of docs/TLS.md and
// checks that what it makes works with masterkv: node certificates verify
// each other both ways by name and by address, the Lambda's client
// certificate is accepted and is good for client authentication only.
func TestDocumentedCertificates(t *testing.T) {
	for _, tool := range []string{"bash", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (make test-deps installs openssl): %v", tool, err)
		}
	}
	doc, err := os.ReadFile("../../docs/TLS.md")
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.HasPrefix(m[1], "# make-certs") {
			script = m[1]
		}
	}
	if script == "" {
		t.Fatal("docs/TLS.md has no ```sh block starting with # make-certs")
	}
	dir := t.TempDir()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("documented openssl commands: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "n1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("n1.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	files := func(name string) *tlsfiles.Store {
		return load(t, tlsfiles.Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, "ca.crt")})
	}
	n1 := files("n1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", n1.ServerConfig(tls.RequireAndVerifyClientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1))
				c.Close()
			}()
		}
	}()
	for _, tc := range []struct {
		client, serverName string
		ok                 bool
	}{
		{"n2", "n1.db.internal", true},
		{"n2", "10.0.0.1", true},
		{"lambda", "n1.db.internal", true},
		{"n2", "n2.db.internal", false}, // n1's certificate does not name n2
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{}, "tcp", ln.Addr().String(), files(tc.client).ClientConfig(tc.serverName))
		if err == nil {
			_, err = conn.Write([]byte("x")) // TLS 1.3: the server's verdict on the client comes after
			if err == nil {
				_, err = conn.Read(make([]byte, 1))
				if err != nil && strings.Contains(err.Error(), "EOF") {
					err = nil // the server read our byte and closed: accepted
				}
			}
			conn.Close()
		}
		if tc.ok != (err == nil) {
			t.Errorf("%s dialling n1 as %s: err = %v, want ok=%v", tc.client, tc.serverName, err, tc.ok)
		}
	}
	if leaf := files("lambda").Leaf(); len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("lambda certificate has extended key usages %v, want clientAuth only", leaf.ExtKeyUsage)
	}
}
