// Package webhook authenticates the requests that reach the Lambda
// functions from outside (a bearer token, or an HMAC-SHA256 signature over
// a timestamp and the body) and derives their idempotency keys.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
const SignatureHeader = "X-Masterkv-Signature"

// Window is how far a signature's timestamp may be from the clock, either
// way.
const Window = 5 * time.Minute

// MinSecretBytes is the shortest HMAC secret or token accepted.
const MinSecretBytes = 16

// Errors of Verify. Each wraps ErrUnauthorized, which maps to 401.
var (
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNoCredentials: neither an Authorization nor a signature header.
	ErrNoCredentials = fmt.Errorf("%w: send Authorization: Bearer <token> or an %s header", ErrUnauthorized, SignatureHeader)
	// ErrBadToken: the bearer (or basic-auth password) is not a known token.
	ErrBadToken = fmt.Errorf("%w: unknown token", ErrUnauthorized)
	// ErrBadSignature: the signature header is malformed or matches no secret.
	ErrBadSignature = fmt.Errorf("%w: bad signature", ErrUnauthorized)
	// ErrStale: the signature's timestamp is outside Window.
	ErrStale = fmt.Errorf("%w: signature timestamp outside the %s window", ErrUnauthorized, Window)
)

// Method names how a request was authenticated, for logs.
type Method string

// Authentication methods.
const (
	MethodBearer    Method = "bearer"
	MethodBasic     Method = "basic"
	MethodSignature Method = "signature"
)

// Verifier checks credentials against the configured tokens and secrets,
// in constant time. Several of each may be configured, for rotation.
type Verifier struct {
	tokens  [][sha256.Size]byte
	secrets [][]byte
	now     func() time.Time
}

// NewVerifier returns a Verifier; now is its clock (nil: time.Now), which
// tests fix to a signature's timestamp.
func NewVerifier(tokens, secrets []string, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	v := &Verifier{now: now}
	for _, t := range tokens {
		v.tokens = append(v.tokens, sha256.Sum256([]byte(t)))
	}
	for _, s := range secrets {
		v.secrets = append(v.secrets, []byte(s))
	}
	return v
}

// Verify authenticates a request from its headers (lower-case names) and
// raw body. A request with a signature header is judged by the signature
// alone; otherwise by Authorization, either "Bearer <token>" or "Basic"
// with a token as the password (orchestrator-client sends basic auth).
func (v *Verifier) Verify(headers map[string]string, body []byte) (Method, error) {
	if sig, ok := headers[strings.ToLower(SignatureHeader)]; ok {
		return MethodSignature, v.verifySignature(sig, body)
	}
	auth := headers["authorization"]
	scheme, cred, _ := strings.Cut(auth, " ")
	switch {
	case auth == "":
		return "", ErrNoCredentials
	case strings.EqualFold(scheme, "Bearer"):
		return MethodBearer, v.verifyToken(cred)
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		_, password, found := strings.Cut(string(raw), ":")
		if err != nil || !found {
			return MethodBasic, ErrBadToken
		}
		return MethodBasic, v.verifyToken(password)
	}
	return "", ErrNoCredentials
}

// verifyToken compares the token's hash with every configured one, so
// neither the position of a match nor the length leaks through timing.
func (v *Verifier) verifyToken(token string) error {
	sum := sha256.Sum256([]byte(token))
	match := 0
	for _, t := range v.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	if token == "" || match != 1 {
		return ErrBadToken
	}
	return nil
}

// verifySignature checks "t=<unix>,v1=<hex>[,v1=<hex>]" against every
// secret. Unknown keys are ignored, so a sender may add newer schemes.
func (v *Verifier) verifySignature(header string, body []byte) error {
	ts, sigs, err := parseSignature(header)
	if err != nil {
		return err
	}
	match := 0
	for _, secret := range v.secrets {
		want := mac(secret, ts, body)
		for _, s := range sigs {
			match |= subtle.ConstantTimeCompare(want, s)
		}
	}
	if match != 1 {
		return ErrBadSignature
	}
	// The window is checked after the MAC, so a forged request is called
	// a bad signature whatever its timestamp.
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if d := v.now().Sub(time.Unix(sec, 0)); d > Window || d < -Window {
		return ErrStale
	}
	return nil
}

// parseSignature splits the header into its timestamp (as sent, since the
// MAC covers it as text) and its decoded v1 signatures.
func parseSignature(header string) (string, [][]byte, error) {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			if ts != "" || val == "" || len(val) > 12 || strings.Trim(val, "0123456789") != "" {
				return "", nil, fmt.Errorf("%w: t must appear once as unix seconds", ErrBadSignature)
			}
			ts = val
		case "v1":
			b, err := hex.DecodeString(val)
			if err != nil || len(b) != sha256.Size {
				return "", nil, fmt.Errorf("%w: v1 must be %d hex digits", ErrBadSignature, 2*sha256.Size)
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: want t=<unix seconds>,v1=<hex>", ErrBadSignature)
	}
	return ts, sigs, nil
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Sign returns the signature header value for body at time t, as a sender
// computes it: HMAC-SHA256(secret, "<unix t>.<body>") in hex.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac([]byte(secret), ts, body))
}

// SignedAt returns the timestamp of a well-formed signature header.
func SignedAt(header string) (time.Time, error) {
	ts, _, err := parseSignature(header)
	if err != nil {
		return time.Time{}, err
	}
	sec, _ := strconv.ParseInt(ts, 10, 64)
	return time.Unix(sec, 0), nil
}

// Refresh re-signs body with the current time when header is a valid
// signature of it under one of secrets, however old: it lets a developer
// replay a signed fixture against the real clock. A signature that is not
// valid is returned unchanged with ok false, so a bad fixture stays bad.
func Refresh(header string, body []byte, secrets []string, now time.Time) (refreshed string, ok bool) {
	at, err := SignedAt(header)
	if err != nil {
		return header, false
	}
	for _, s := range secrets {
		v := NewVerifier(nil, []string{s}, func() time.Time { return at })
		if _, err := v.Verify(map[string]string{strings.ToLower(SignatureHeader): header}, body); err == nil {
			return Sign(s, now, body), true
		}
	}
	return header, false
}
