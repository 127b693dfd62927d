package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/tlsfiles"
	"github.com/masterkv/masterkv/internal/tlsfiles/tlstest"
)

// serve accepts TLS connections on loopback with srv's ServerConfig and
// completes each handshake; it returns the address.
func serve(t *testing.T, srv *tlsfiles.Store, auth tls.ClientAuthType) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.ServerConfig(auth))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1)) // a refused client sees the alert
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func load(t *testing.T, f tlsfiles.Files) *tlsfiles.Store {
	t.Helper()
	s, err := tlsfiles.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial connects with client and reports the serial the server presented.
func dial(client *tlsfiles.Store, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, &net.Dialer{}, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// With TLS 1.3 the server judges the client's certificate after the
	// client's handshake ends: a refusal arrives on the first read.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return "", err
	}
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func TestMutualVerification(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "group"), tlstest.NewCA(t, "other")
	caPath, otherPath := ca.WriteCA(t, dir, "ca.crt"), other.WriteCA(t, dir, "other.crt")
	sc, sk := ca.Issue(t, "server", "127.0.0.1").Write(t, dir, "server")
	cc, ck := ca.Issue(t, "client", "127.0.0.1").Write(t, dir, "client")
	oc, ok := other.Issue(t, "stranger", "127.0.0.1").Write(t, dir, "stranger")
	addr := serve(t, load(t, tlsfiles.Files{Cert: sc, Key: sk, CA: caPath}), tls.RequireAndVerifyClientCert)

	for _, tc := range []struct {
		name    string
		client  tlsfiles.Files
		refused string // part of the error; "" for success
	}{
		{"certificate from the CA", tlsfiles.Files{Cert: cc, Key: ck, CA: caPath}, ""},
		{"no client certificate", tlsfiles.Files{CA: caPath}, "remote error: tls: certificate required"},
		// Go's client does not even offer a certificate the server's CA list
		// does not name; another client would be told "unknown certificate
		// authority".,
		{"client certificate from another CA", tlsfiles.Files{Cert: oc, Key: ok, CA: caPath}, "remote error: tls: "},
		{"server not signed by the client's CA", tlsfiles.Files{Cert: cc, Key: ck, CA: otherPath}, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dial(load(t, tc.client), addr)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("dial: %v, want success", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("dial: err = %v, want one with %q", err, tc.refused)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "group")
	caPath := ca.WriteCA(t, dir, "ca.crt")
	first := ca.Issue(t, "server", "127.0.0.1")
	sc, sk := first.Write(t, dir, "server")
	srv := load(t, tlsfiles.Files{Cert: sc, Key: sk, CA: caPath})
	addr := serve(t, srv, tls.NoClientCert)
	client := load(t, tlsfiles.Files{CA: caPath})
	if got, err := dial(client, addr); err != nil || got != first.Serial.String() {
		t.Fatalf("before rotation: serial %s, err %v; want %s", got, err, first.Serial)
	}

	// Half-written: the new certificate with the old key is refused and the
	// loaded pair keeps serving.
	second := ca.Issue(t, "server", "127.0.0.1")
	if err := os.WriteFile(sc, second.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := srv.Reload(); err == nil || changed {
		t.Fatalf("reload of a mismatched pair: changed %v, err %v; want an error", changed, err)
	}
	if got, err := dial(client, addr); err != nil || got != first.Serial.String() {
		t.Fatalf("after a failed reload: serial %s, err %v; want %s", got, err, first.Serial)
	}

	second.Write(t, dir, "server")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go srv.Watch(ctx, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := dial(client, addr)
		if err == nil && got == second.Serial.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotation: serial %s, err %v; want %s", got, err, second.Serial)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoadErrorsNameTheFileNotTheKey(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "group")
	caPath := ca.WriteCA(t, dir, "ca.crt")
	pair := ca.Issue(t, "n", "127.0.0.1")
	cert, key := pair.Write(t, dir, "n")
	otherKey := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherKey, ca.Issue(t, "m").KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files tlsfiles.Files
		part  tlsfiles.Part
	}{
		{"missing cert file", tlsfiles.Files{Cert: filepath.Join(dir, "nope.crt"), Key: key}, tlsfiles.PartCert},
		{"key as cert", tlsfiles.Files{Cert: key, Key: key}, tlsfiles.PartCert},
		{"key of another cert", tlsfiles.Files{Cert: cert, Key: otherKey}, tlsfiles.PartKey},
		{"cert without key", tlsfiles.Files{Cert: cert}, tlsfiles.PartKey},
		{"CA is a key", tlsfiles.Files{CA: key}, tlsfiles.PartCA},
		{"CA missing", tlsfiles.Files{CA: caPath + ".gone"}, tlsfiles.PartCA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsfiles.Load(tc.files)
			var fe *tlsfiles.Error
			if !errors.As(err, &fe) || fe.Part != tc.part {
				t.Fatalf("err = %v, want a *tlsfiles.Error for the %s", err, tc.part)
			}
			for _, k := range [][]byte{pair.KeyPEM, []byte("PRIVATE KEY")} {
				if strings.Contains(err.Error(), string(k)) {
					t.Fatalf("error %q shows key material", err)
				}
			}
		})
	}
}
