package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// handshakeTimeout bounds an incoming raft connection's TLS handshake, so a
// peer that connects and says nothing does not hold a goroutine.
const handshakeTimeout = 10 * time.Second

// tlsStream is raft's stream layer over mutual TLS: both ends present a
// certificate signed by the group's CA and verify the other's. A peer
// without one is refused at the handshake, before raft reads a byte.
type tlsStream struct {
	ln    net.Listener
	adv   net.Addr
	files *tlsfiles.Store
	log   *slog.Logger
}

var _ raft.StreamLayer = (*tlsStream)(nil)

func newTLSStream(bind string, adv net.Addr, files *tlsfiles.Store, log *slog.Logger) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &tlsStream{ln: ln, adv: adv, files: files, log: log}, nil
}

// Accept returns the next connection; its handshake runs on first use, in
// raft's goroutine for that connection, not in the accept loop.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, s.files.ServerConfig(tls.RequireAndVerifyClientCert)), log: s.log}, nil
}

// Dial connects to a peer and completes the handshake, verifying the peer's
// certificate against the CA and its address.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.files.DialContext(ctx, &net.Dialer{}, "tcp", string(address))
}

func (s *tlsStream) Close() error { return s.ln.Close() }

// Addr is the advertised address, which raft hands to other nodes.
func (s *tlsStream) Addr() net.Addr { return s.adv }

// serverConn completes the server handshake before the first read or write
// and logs a refused peer once.
type serverConn struct {
	*tls.Conn
	log  *slog.Logger
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		err := c.Conn.HandshakeContext(ctx)
		if err == nil {
			err = nodeCertificate(c.Conn.ConnectionState())
		}
		if err != nil {
			c.err = fmt.Errorf("raft tls handshake with %s: %w", c.RemoteAddr(), err)
			c.log.Warn("raft connection refused at the TLS handshake", "remote", c.RemoteAddr().String(), "err", err)
		}
	})
	return c.err
}

func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// nodeCertificate refuses a client certificate that could not serve raft
// itself: one made for API clients only (clientAuth, no serverAuth), such
// as the Lambda functions', even when the group's CA signed it.
func nodeCertificate(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	for _, u := range cs.PeerCertificates[0].ExtKeyUsage {
		if u == x509.ExtKeyUsageServerAuth || u == x509.ExtKeyUsageAny {
			return nil
		}
	}
	return errors.New("the client certificate is not a node certificate (no serverAuth extended key usage)")
}
