package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// tlsVar is a file setting: its variable (without prefix) and value.
type tlsVar struct{ name, path string }

func (c Config) raftTLSVars() [3]tlsVar {
	return [3]tlsVar{{"RAFT_TLS_CERT_FILE", c.RaftCertFile}, {"RAFT_TLS_KEY_FILE", c.RaftKeyFile}, {"RAFT_TLS_CA_FILE", c.RaftCAFile}}
}

func (c Config) validateTLS() error {
	if err := allOrNone(c.raftTLSVars()); err != nil {
		return err
	}
	if (c.HTTPCertFile == "") != (c.HTTPKeyFile == "") {
		return varErr("HTTP_TLS_CERT_FILE", "and %s_HTTP_TLS_KEY_FILE must be set together", Prefix)
	}
	if c.HTTPClientCAFile != "" && c.HTTPCertFile == "" {
		return varErr("HTTP_TLS_CLIENT_CA_FILE", "needs %s_HTTP_TLS_CERT_FILE and _KEY_FILE: client certificates are verified on a TLS API only", Prefix)
	}
	if c.HTTPCertFile != "" {
		peers, _ := c.PeerList() // checked before
		for _, p := range peers {
			if !strings.HasPrefix(p.HTTPAddr, "https://") {
				return varErr("PEERS", "entry %s: the HTTP address must start with https:// when %s_HTTP_TLS_CERT_FILE is set, got %q", p.ID, Prefix, p.HTTPAddr)
			}
		}
	}
	if c.ReloadInterval < 0 {
		return varErr("TLS_RELOAD_INTERVAL", "must not be negative (0 reloads on SIGHUP only), got %s", c.ReloadInterval)
	}
	return nil
}

// allOrNone checks that the variables are all set or all empty.
func allOrNone(vars [3]tlsVar) error {
	set := 0
	for _, v := range vars {
		if v.path != "" {
			set++
		}
	}
	if set == 0 || set == len(vars) {
		return nil
	}
	for _, v := range vars {
		if v.path == "" {
			return varErr(v.name, "must be set with %s_%s and %s_%s", Prefix, vars[0].name, Prefix, vars[1].name)
		}
	}
	return nil
}

// RaftTLS loads the raft certificate, key and CA; nil when raft runs on
// plain TCP. An unusable file is reported with its variable.
func (c Config) RaftTLS() (*tlsfiles.Store, error) {
	v := c.raftTLSVars()
	if v[0].path == "" {
		return nil, nil
	}
	return loadTLS(v)
}

// HTTPServerTLS loads the API's certificate, key and client CA; nil when
// the API is plain HTTP.
func (c Config) HTTPServerTLS() (*tlsfiles.Store, error) {
	if c.HTTPCertFile == "" {
		return nil, nil
	}
	return loadTLS([3]tlsVar{{"HTTP_TLS_CERT_FILE", c.HTTPCertFile}, {"HTTP_TLS_KEY_FILE", c.HTTPKeyFile}, {"HTTP_TLS_CLIENT_CA_FILE", c.HTTPClientCAFile}})
}

// ForwardTLS loads what this node uses to call other nodes' APIs over TLS:
// HTTP_TLS_CA_FILE to verify them and, when they require client
// certificates, its own API certificate to present. nil when neither is
// set (https:// peers are then verified against the system roots).
func (c Config) ForwardTLS() (*tlsfiles.Store, error) {
	if c.HTTPCAFile == "" && c.HTTPCertFile == "" {
		return nil, nil
	}
	return loadTLS([3]tlsVar{{"HTTP_TLS_CERT_FILE", c.HTTPCertFile}, {"HTTP_TLS_KEY_FILE", c.HTTPKeyFile}, {"HTTP_TLS_CA_FILE", c.HTTPCAFile}})
}

// loadTLS loads cert, key and CA named by vars (an empty path is left out).
func loadTLS(vars [3]tlsVar) (*tlsfiles.Store, error) {
	s, err := tlsfiles.Load(tlsfiles.Files{Cert: vars[0].path, Key: vars[1].path, CA: vars[2].path})
	var fe *tlsfiles.Error
	if errors.As(err, &fe) {
		name := map[tlsfiles.Part]string{tlsfiles.PartCert: vars[0].name, tlsfiles.PartKey: vars[1].name, tlsfiles.PartCA: vars[2].name}[fe.Part]
		return nil, varErr(name, "%s", fe.Error())
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return s, nil
}
