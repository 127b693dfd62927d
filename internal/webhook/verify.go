// Package webhook authenticates the requests that reach the Lambda
// functions from outside (a bearer token, or an HMAC-SHA256 signature over
// everything that changes a request's outcome) and derives their
// idempotency keys.
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

// SignatureHeader carries "t=<unix seconds>,v2=<hex HMAC-SHA256>".
const SignatureHeader = "X-Masterkv-Signature"

// KeyHeader is the idempotency key header; a signature covers its value.
const KeyHeader = "Idempotency-Key"

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

// Request is what a signature covers besides its timestamp: everything
// that changes what the request does. A signature over less can be
// replayed into another outcome: with a fresh idempotency key (committed
// again), against another function, or for another alias.
type Request struct {
	// Method is the HTTP method, as sent (POST, GET).
	Method string
	// Route is the node API path the request stands for, whatever URL
	// reached the function: "/v1/failover", "/api/submit-masters-to-kv-stores"
	// or ".../<alias>" with the alias percent-escaped as a path segment.
	Route string
	// Key is the Idempotency-Key header, "" when there is none.
	Key  string
	Body []byte
}

// Canonical is the text a v2 signature's HMAC covers, fields joined by
// newlines: "v2", the timestamp as sent, the method, the route, the
// idempotency key (empty when none), then the raw body to its end. Every
// field but the body is free of newlines (the route is escaped, the key is
// printable ASCII, the timestamp digits), so no two requests share one.
func Canonical(ts string, r Request) []byte {
	var b []byte
	for _, f := range []string{"v2", ts, r.Method, r.Route, r.Key} {
		b = append(append(b, f...), '\n')
	}
	return append(b, r.Body...)
}

// Verify authenticates a request from its headers (lower-case names);
// r.Key is taken from the Idempotency-Key header. A request with a
// signature header is judged by the signature alone; otherwise by
// Authorization, either "Bearer <token>" or "Basic" with a token as the
// password (orchestrator-client sends basic auth).
func (v *Verifier) Verify(headers map[string]string, r Request) (Method, error) {
	if sig, ok := headers[strings.ToLower(SignatureHeader)]; ok {
		r.Key = headers[strings.ToLower(KeyHeader)]
		return MethodSignature, v.verifySignature(sig, r)
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

// verifySignature checks "t=<unix>,v2=<hex>[,v2=<hex>]" against every
// secret. Unknown keys are ignored, so a sender may add newer schemes.
func (v *Verifier) verifySignature(header string, r Request) error {
	ts, sigs, err := parseSignature(header)
	if err != nil {
		return err
	}
	match := 0
	for _, secret := range v.secrets {
		want := mac(secret, Canonical(ts, r))
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

// ErrV1 refuses the first scheme, which covered only the timestamp and the
// body: a captured request could be replayed with a fresh idempotency key,
// to another function, or for another alias.
var ErrV1 = fmt.Errorf("%w: v1 signatures (timestamp and body only) are no longer accepted; sign v2 over method, route, idempotency key, timestamp and body (docs/LAMBDA.md)", ErrBadSignature)

// parseSignature splits the header into its timestamp (as sent, since the
// MAC covers it as text) and its decoded v2 signatures.
func parseSignature(header string) (string, [][]byte, error) {
	var ts string
	var sigs [][]byte
	v1 := false
	for _, part := range strings.Split(header, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			if ts != "" || val == "" || len(val) > 12 || strings.Trim(val, "0123456789") != "" {
				return "", nil, fmt.Errorf("%w: t must appear once as unix seconds", ErrBadSignature)
			}
			ts = val
		case "v1":
			v1 = true
		case "v2":
			b, err := hex.DecodeString(val)
			if err != nil || len(b) != sha256.Size {
				return "", nil, fmt.Errorf("%w: v2 must be %d hex digits", ErrBadSignature, 2*sha256.Size)
			}
			sigs = append(sigs, b)
		}
	}
	if len(sigs) == 0 && v1 {
		return "", nil, ErrV1
	}
	if ts == "" || len(sigs) == 0 {
		return "", nil, fmt.Errorf("%w: want t=<unix seconds>,v2=<hex>", ErrBadSignature)
	}
	return ts, sigs, nil
}

func mac(secret, text []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(text)
	return m.Sum(nil)
}

// Sign returns the signature header value for r at time t, as a sender
// computes it: HMAC-SHA256(secret, Canonical(t, r)) in hex.
func Sign(secret string, t time.Time, r Request) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v2=" + hex.EncodeToString(mac([]byte(secret), Canonical(ts, r)))
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

// Refresh re-signs r with the current time when header is a valid
// signature of it under one of secrets, however old: it lets a developer
// replay a signed fixture against the real clock. A signature that is not
// valid is returned unchanged with ok false, so a bad fixture stays bad.
func Refresh(header string, r Request, secrets []string, now time.Time) (refreshed string, ok bool) {
	at, err := SignedAt(header)
	if err != nil {
		return header, false
	}
	for _, s := range secrets {
		v := NewVerifier(nil, []string{s}, func() time.Time { return at })
		if v.verifySignature(header, r) == nil {
			return Sign(s, now, r), true
		}
	}
	return header, false
}
