// Package tlsfiles loads a PEM certificate, its private key and a CA bundle
// from files, keeps the current set in memory and reloads it when the files
// change or on request (SIGHUP), so that certificates rotate without a
// restart. Every tls.Config it hands out reads the set current at the
// handshake: raft's stream layer, the HTTP server, the node-to-node
// forwarder and the Lambda functions' node client all go through it.
package tlsfiles

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// MinVersion is the oldest TLS version spoken; Go negotiates 1.3 when both
// ends have it.
const MinVersion = tls.VersionTLS12

// Part names one of the files, so that callers can name the setting at
// fault.
type Part string

// The parts of Files.
const (
	PartCert Part = "certificate"
	PartKey  Part = "key"
	PartCA   Part = "CA"
)

// Error is a file that cannot be used. It never holds the file's content.
type Error struct {
	Part Part
	Path string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s file %s: %v", e.Part, e.Path, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Files are the paths of one TLS identity. Cert and Key go together; CA is
// the bundle peers are verified against (empty: the system roots for a
// client, no client verification for a server).
type Files struct {
	Cert, Key, CA string
}

// material is one consistent read of Files.
type material struct {
	cert  *tls.Certificate // nil without Cert
	pool  *x509.CertPool   // nil without CA
	stamp [sha256.Size]byte
}

// Store holds the current material of Files. It is safe for concurrent use.
type Store struct {
	files Files
	cur   atomic.Pointer[material]
	mu    sync.Mutex // serializes Reload
}

// Load reads files once. An error is an *Error naming the file at fault.
func Load(files Files) (*Store, error) {
	if (files.Cert == "") != (files.Key == "") {
		p, part := files.Key, PartKey
		if files.Cert == "" {
			part = PartCert
		}
		return nil, &Error{Part: part, Path: p, Err: errors.New("certificate and key must be set together")}
	}
	s := &Store{files: files}
	m, err := read(files)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	return s, nil
}

// Files returns the paths the store reads.
func (s *Store) Files() Files { return s.files }

// Leaf returns the current certificate's leaf, nil without one.
func (s *Store) Leaf() *x509.Certificate {
	if c := s.cur.Load().cert; c != nil {
		return c.Leaf
	}
	return nil
}

// Reload re-reads the files. changed is false when they hold what is loaded
// already. On error the loaded material stays in use: a rotation caught
// half-written (new certificate, old key) is picked up on the next try.
func (s *Store) Reload() (changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp, err := stampOf(s.files)
	if err != nil {
		return false, err
	}
	if stamp == s.cur.Load().stamp {
		return false, nil
	}
	m, err := read(s.files)
	if err != nil {
		return false, err
	}
	s.cur.Store(m)
	return true, nil
}

// Watch calls Reload every interval until ctx ends, logging each change and
// each failure (paths and certificate serials only).
func (s *Store) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.ReloadAndLog(log)
		}
	}
}

// ReloadAndLog is Reload with its outcome logged.
func (s *Store) ReloadAndLog(log *slog.Logger) {
	changed, err := s.Reload()
	switch {
	case err != nil:
		log.Warn("tls files not reloaded; the loaded ones stay in use", "cert", s.files.Cert, "ca", s.files.CA, "err", err)
	case changed:
		attrs := []any{"cert", s.files.Cert, "ca", s.files.CA}
		if l := s.Leaf(); l != nil {
			attrs = append(attrs, "serial", l.SerialNumber.String(), "not_after", l.NotAfter.UTC())
		}
		log.Info("tls files reloaded", attrs...)
	}
}

// ServerConfig returns a server configuration that presents the current
// certificate and, with auth above tls.NoClientCert, verifies clients
// against the current CA. The store must have a certificate.
func (s *Store) ServerConfig(auth tls.ClientAuthType) *tls.Config {
	get := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.cur.Load()
		if m.cert == nil {
			return nil, errors.New("tlsfiles: no server certificate loaded")
		}
		return &tls.Config{
			MinVersion: MinVersion, Certificates: []tls.Certificate{*m.cert},
			ClientAuth: auth, ClientCAs: m.pool,
		}, nil
	}
	return &tls.Config{
		MinVersion:         MinVersion,
		GetConfigForClient: get,
		// Never used (GetConfigForClient answers first); net/http wants
		// to see a certificate source.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
}

// ClientConfig returns a client configuration for serverName from the
// current material: the server is verified against the CA (the system
// roots without one) and the certificate, if any, is presented.
func (s *Store) ClientConfig(serverName string) *tls.Config {
	m := s.cur.Load()
	c := &tls.Config{MinVersion: MinVersion, ServerName: serverName, RootCAs: m.pool}
	if m.cert != nil {
		c.Certificates = []tls.Certificate{*m.cert}
	}
	return c
}

// DialContext connects to addr and completes a TLS handshake with
// ClientConfig(host of addr); d.Timeout, if set, bounds the connect and the
// handshake together. It fits http.Transport.DialTLSContext.
func (s *Store) DialContext(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, s.ClientConfig(host))
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return conn, nil
}

func stampOf(f Files) ([sha256.Size]byte, error) {
	h := sha256.New()
	for _, p := range []struct {
		part Part
		path string
	}{{PartCert, f.Cert}, {PartKey, f.Key}, {PartCA, f.CA}} {
		if p.path == "" {
			continue
		}
		b, err := os.ReadFile(p.path)
		if err != nil {
			return [sha256.Size]byte{}, &Error{Part: p.part, Path: p.path, Err: err}
		}
		s := sha256.Sum256(b)
		h.Write(s[:])
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

func read(f Files) (*material, error) {
	stamp, err := stampOf(f)
	if err != nil {
		return nil, err
	}
	m := &material{stamp: stamp}
	if f.Cert != "" {
		if m.cert, err = readPair(f.Cert, f.Key); err != nil {
			return nil, err
		}
	}
	if f.CA != "" {
		b, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, &Error{Part: PartCA, Path: f.CA, Err: err}
		}
		certs, err := parseCerts(b)
		if err != nil {
			return nil, &Error{Part: PartCA, Path: f.CA, Err: err}
		}
		m.pool = x509.NewCertPool()
		for _, c := range certs {
			m.pool.AddCert(c)
		}
	}
	return m, nil
}

// readPair reads the certificate first, so that a bad certificate is not
// reported as a bad key; the key's content never reaches an error.
func readPair(certPath, keyPath string) (*tls.Certificate, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, &Error{Part: PartCert, Path: certPath, Err: err}
	}
	if _, err := parseCerts(cb); err != nil {
		return nil, &Error{Part: PartCert, Path: certPath, Err: err}
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, &Error{Part: PartKey, Path: keyPath, Err: err}
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, &Error{Part: PartKey, Path: keyPath, Err: errors.New("not a PEM private key matching the certificate")}
	}
	return &pair, nil
}

// parseCerts decodes every CERTIFICATE block of a PEM file; there must be
// at least one.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}
