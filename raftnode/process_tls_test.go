//go:build unix

package main_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/nodeclient"
	"github.com/masterkv/masterkv/internal/tlsfiles/tlstest"
)

// TestProcessTLS runs three real processes with raft over mutual TLS and the
// HTTP API over TLS with client certificates: a write sent to a follower is
// forwarded to the leader over TLS, the Lambda's node client reaches the
// group verifying it against the CA, a client without a certificate or
// without TLS is refused, and after the files are replaced and SIGHUP sent
// a node serves its new certificate on both ports without a restart.
func TestProcessTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "masterkv group"), tlstest.NewCA(t, "another group")
	caPath := ca.WriteCA(t, dir, "ca.crt")
	first := ca.Issue(t, "masterkv node", "127.0.0.1")
	nodeCert, nodeKey := first.Write(t, dir, "node")
	clientPair := ca.IssueClient(t, "operator")
	clientCert, clientKey := clientPair.Write(t, dir, "client")

	c := newProcCluster(t, 3,
		"MASTERKV_RAFT_TLS_CERT_FILE="+nodeCert, "MASTERKV_RAFT_TLS_KEY_FILE="+nodeKey, "MASTERKV_RAFT_TLS_CA_FILE="+caPath,
		"MASTERKV_HTTP_TLS_CERT_FILE="+nodeCert, "MASTERKV_HTTP_TLS_KEY_FILE="+nodeKey,
		"MASTERKV_HTTP_TLS_CLIENT_CA_FILE="+caPath, "MASTERKV_HTTP_TLS_CA_FILE="+caPath,
		"MASTERKV_TLS_RELOAD_INTERVAL=0", // SIGHUP only: the test proves the signal
	)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	operator, err := tls.X509KeyPair(clientPair.CertPEM, clientPair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c.useTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{operator}})
	for i := range c.members {
		c.start(i, i == 0)
	}
	leader := c.waitLeader(30 * time.Second)
	follower := (leader + 1) % 3

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	rc, code, body, err := c.failover(ctx, follower, "tls-1", "c1", "10.0.0.1", 3306)
	if err != nil || code != http.StatusOK {
		t.Fatalf("failover through follower %s: status %d, err %v: %s", c.members[follower].id, code, err, body)
	}
	for i := range c.members {
		waitFor(t, 10*time.Second, c.members[i].id+" to apply c1", func() error {
			m, err := c.masters(i)
			if err != nil {
				return err
			}
			if m["c1"].Epoch != rc.Epoch {
				return fmt.Errorf("c1 = %+v, want epoch %d", m["c1"], rc.Epoch)
			}
			return nil
		})
	}

	t.Run("Lambda node client verifies the nodes against the CA", func(t *testing.T) {
		var urls []string
		for i := range c.members {
			urls = append(urls, c.url(i))
		}
		nc, err := nodeclient.New(nodeclient.Config{
			Nodes: urls, Token: c.token, Timeout: 5 * time.Second, ConnectTimeout: 2 * time.Second, Attempts: 3,
			CAFile: caPath, CertFile: clientCert, KeyFile: clientKey,
		}, nodeclient.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := nc.Do(ctx, nodeclient.Request{
			Method: http.MethodPost, Path: "/v1/failover", ContentType: "application/json",
			Body: []byte(`{"cluster":"c2","host":"10.0.0.2","port":3306}`), IdempotencyKey: "tls-lambda-1",
		})
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("node client failover: %+v, err %v", resp, err)
		}
	})

	t.Run("refused clients", func(t *testing.T) {
		addr := c.members[follower].httpAddr
		plain := &http.Client{Timeout: 5 * time.Second}
		if resp, err := plain.Get("http://" + addr + "/v1/masters"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("plain HTTP GET /v1/masters: status 200, want a refusal")
			}
		}
		for _, tc := range []struct {
			name string
			cfg  *tls.Config
		}{
			{"no client certificate", &tls.Config{RootCAs: roots}},
			{"client certificate from another CA", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pairOf(t, other.Issue(t, "stranger"))}}},
		} {
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc.cfg}}
			resp, err := cl.Get("https://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s: GET /healthz status %d, want a refused handshake", tc.name, resp.StatusCode)
			}
		}
	})

	t.Run("rotation on SIGHUP", func(t *testing.T) {
		m := c.members[follower]
		pid := m.cmd.Process.Pid
		second := ca.Issue(t, "masterkv node", "127.0.0.1")
		second.Write(t, dir, "node")
		if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		want := second.Serial.String()
		for _, port := range []struct{ name, addr string }{{"http", m.httpAddr}, {"raft", m.raftAddr}} {
			waitFor(t, 10*time.Second, m.id+" to serve the new certificate on its "+port.name+" port", func() error {
				got, err := servedSerial(port.addr, roots, operator)
				if err != nil {
					return err
				}
				if got != want {
					return fmt.Errorf("serial %s, want %s", got, want)
				}
				return nil
			})
		}
		if !m.running() || m.cmd.Process.Pid != pid {
			t.Fatalf("%s restarted or exited during the rotation", m.id)
		}
		rc, code, body, err := c.failover(ctx, follower, "tls-2", "c1", "10.0.0.3", 3306)
		if err != nil || code != http.StatusOK {
			t.Fatalf("failover through %s after rotation: status %d, err %v: %s", m.id, code, err, body)
		}
		if rc.Master != "10.0.0.3:3306" {
			t.Errorf("receipt master %q, want 10.0.0.3:3306", rc.Master)
		}
	})
}

// servedSerial completes a TLS handshake with addr and returns the serial of
// the certificate it presented.
func servedSerial(addr string, roots *x509.CertPool, cert tls.Certificate) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func pairOf(t *testing.T, p tlstest.Pair) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
