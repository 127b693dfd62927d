package consulkv_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/testserver"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ca key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("ca cert: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse ca cert: %v", err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issueServer writes a server certificate for 127.0.0.1 and localhost and
// its key, returning their paths.
func (ca *testCA) issueServer(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("server key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "server.dc1.consul"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "server.dc1.consul"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("server cert: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("server key: %v", err)
	}
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// TestTLS: over HTTPS the agent's certificate is verified against the
// configured CA, including the name, and never skipped.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "test-ca")
	otherCA := newTestCA(t, dir, "other-ca")
	certFile, keyFile := ca.issueServer(t, dir)
	a := startAgent(t, testserver.ConsulOptions{TLS: &testserver.TLSFiles{CA: ca.file, Cert: certFile, Key: keyFile}})
	localhost := strings.Replace(a.HTTPSAddr(), "127.0.0.1", "localhost", 1)

	tests := []struct {
		name    string
		cfg     consulkv.Config
		wantErr string // the error must contain this; "": success
	}{
		{name: "test CA, IP SAN", cfg: consulkv.Config{Address: a.HTTPSAddr(), CAFile: ca.file}},
		{name: "test CA, DNS SAN", cfg: consulkv.Config{Address: localhost, CAFile: ca.file}},
		{name: "test CA, server name localhost", cfg: consulkv.Config{Address: a.HTTPSAddr(), CAFile: ca.file, TLSServerName: "localhost"}},
		{name: "test CA, wrong server name", cfg: consulkv.Config{Address: a.HTTPSAddr(), CAFile: ca.file, TLSServerName: "consul.example"},
			wantErr: "x509: certificate is valid for"},
		{name: "other CA", cfg: consulkv.Config{Address: a.HTTPSAddr(), CAFile: otherCA.file},
			wantErr: "x509: certificate signed by unknown authority"},
		{name: "system roots", cfg: consulkv.Config{Address: a.HTTPSAddr()},
			wantErr: "x509: certificate signed by unknown authority"},
	}
	for _, provider := range providers {
		for _, tt := range tests {
			t.Run(provider+"/"+tt.name, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Scheme, cfg.Provider = "https", provider
				s := newStore(t, a, cfg)
				alias := strings.NewReplacer(" ", "-", ",", "").Replace("tls-" + provider + "-" + tt.name)
				c := cluster(alias, sampleMaster(1), 1)
				o := write(t, s, c)[0]
				// A survey of 256 clusters lists the prefix, the one
				// request made without the api client: same TLS rules.
				many := []kvstore.Cluster{c}
				for i := 1; i < 256; i++ {
					many = append(many, cluster(fmt.Sprintf("%s-absent-%03d", alias, i), sampleMaster(1), 1))
				}
				same, surveyErr := s.Survey(context.Background(), many)
				if tt.wantErr == "" {
					checkOutcome(t, o, kvstore.Written, 6)
					a.checkHolds(t, c)
					if surveyErr != nil || !same[0] || same[1] {
						t.Errorf("Survey over TLS: %v, err %v; want the written cluster exact and the others not", same[:2], surveyErr)
					}
					return
				}
				if surveyErr == nil || !strings.Contains(surveyErr.Error(), tt.wantErr) {
					t.Errorf("Survey over TLS: err %v, want one containing %q", surveyErr, tt.wantErr)
				}
				if o.Status != kvstore.Failed || o.Err == nil {
					t.Fatalf("outcome %v, err %v; want failed with a certificate error", o.Status, o.Err)
				}
				if !strings.Contains(o.Err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", o.Err, tt.wantErr)
				}
				if got := a.snapshot(t, alias); len(got) != 0 {
					t.Errorf("failed TLS write left keys: %v", got)
				}
			})
		}
	}

	t.Run("CA file missing", func(t *testing.T) {
		_, err := consulkv.New(consulkv.Config{Address: a.HTTPSAddr(), Scheme: "https", CAFile: filepath.Join(dir, "absent.pem")})
		if err == nil {
			t.Errorf("New with a missing CA file: nil error, want one")
		}
	})
}
