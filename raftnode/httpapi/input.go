package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/masterkv/masterkv/internal/master"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// maxIDBytes bounds an idempotency key.
const maxIDBytes = 200

func fieldErr(field, format string, args ...any) error {
	return &master.FieldError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// readBody reads at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, fieldErr("body", "could not be read: %v", err)
	}
	return b, nil
}

// portValue accepts a JSON number or a string of digits, because hook
// scripts template ports into JSON either way.
type portValue struct {
	set bool
	n   int
}

func (p *portValue) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fieldErr("port", "must be an integer from 1 to 65535, got %s", b)
	}
	p.set, p.n = true, n
	return nil
}

// epochValue accepts a JSON number or a string of digits, like portValue:
// a hook templates the epoch it read into JSON either way.
type epochValue struct {
	set bool
	n   uint64
}

func (e *epochValue) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "null" {
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return fieldErr("expected_epoch", "must be a positive integer (an epoch of the cluster's record), got %s", b)
	}
	e.set, e.n = true, n
	return nil
}

// masterInput is one master as sent by a caller.
type masterInput struct {
	Cluster string    `json:"cluster"`
	Host    string    `json:"host"`
	Port    portValue `json:"port"`
	IPv4    string    `json:"ipv4"`
	IPv6    string    `json:"ipv6"`
}

func (in masterInput) entry(field string) (string, master.Master, error) {
	m := master.Master{Host: in.Host, Port: in.Port.n, IPv4: in.IPv4, IPv6: in.IPv6}
	if !in.Port.set {
		return "", m, fieldErr(field+"port", "is required")
	}
	if err := master.Validate(in.Cluster, m); err != nil {
		return "", m, master.Prefixed(field, err)
	}
	return in.Cluster, m, nil
}

// failoverInput is the body of POST /v1/failover.
type failoverInput struct {
	masterInput
	Expected      string     `json:"expected"`
	ExpectedEpoch epochValue `json:"expected_epoch"`
	ID            string     `json:"id"`
}

var failoverFields = []string{"cluster", "host", "port", "ipv4", "ipv6", "expected", "expected_epoch", "id"}

// isJSON tells JSON from a form body by its first byte, because
// `curl -d '{...}'` labels JSON as a form.
func isJSON(body []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeftFunc(body, unicode.IsSpace), []byte("{"))
}

// decodeJSON decodes one JSON object into the struct v points to. Field
// names must be exact and unique (see checkKeys) before encoding/json, which
// matches names case-insensitively and lets a repeated key win, reads it.
func decodeJSON(body []byte, v any) error {
	if err := checkKeys(body, fieldsOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var fe *master.FieldError
		if errors.As(err, &fe) {
			return fe
		}
		return fieldErr("body", "must be a JSON object with known fields: %v", err)
	}
	if dec.More() {
		return fieldErr("body", "must hold exactly one JSON object")
	}
	return nil
}

// parseFailover reads a failover request from JSON or a form.
func parseFailover(body []byte) (failoverInput, error) {
	var in failoverInput
	if isJSON(body) {
		return in, decodeJSON(body, &in)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return in, fieldErr("body", "must be JSON or form-encoded: %v", err)
	}
	for k, vs := range form {
		if !contains(failoverFields, k) {
			return in, fieldErr(k, "unknown field; field names are exact and case-sensitive: allowed are %s", strings.Join(failoverFields, ", "))
		}
		if len(vs) > 1 {
			return in, fieldErr(k, "given more than once; each field is given at most once")
		}
	}
	in.Cluster, in.Host, in.IPv4, in.IPv6 = form.Get("cluster"), form.Get("host"), form.Get("ipv4"), form.Get("ipv6")
	in.Expected, in.ID = form.Get("expected"), form.Get("id")
	if p := form.Get("port"); p != "" {
		if err := in.Port.UnmarshalJSON([]byte(p)); err != nil {
			return in, err
		}
	}
	if _, ok := form["expected_epoch"]; ok {
		if err := in.ExpectedEpoch.UnmarshalJSON([]byte(form.Get("expected_epoch"))); err != nil {
			return in, err
		}
	}
	return in, nil
}

// populateInput is the body of POST /v1/populate. Masters stay raw until
// decoded one by one, so an error names its entry (masters[3].port).
type populateInput struct {
	Masters []json.RawMessage `json:"masters"`
	ID      string            `json:"id"`
}

// decodeMaster decodes entry i of a populate body.
func decodeMaster(i int, raw json.RawMessage) (masterInput, error) {
	var mi masterInput
	err := decodeJSON(raw, &mi)
	var fe *master.FieldError
	if errors.As(err, &fe) && fe.Field == "body" {
		return mi, &master.FieldError{Field: fmt.Sprintf("masters[%d]", i), Rule: fe.Rule}
	}
	if err != nil {
		return mi, master.Prefixed(fmt.Sprintf("masters[%d].", i), err)
	}
	return mi, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// requestID merges the body's id with the Idempotency-Key header.
func requestID(bodyID string, r *http.Request) (string, error) {
	hdr := r.Header.Get("Idempotency-Key")
	if bodyID != "" && hdr != "" && bodyID != hdr {
		return "", fieldErr("id", "differs from the Idempotency-Key header")
	}
	id := bodyID
	if id == "" {
		id = hdr
	}
	if len(id) > maxIDBytes {
		return "", fieldErr("id", "must be at most %d bytes", maxIDBytes)
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return "", fieldErr("id", "must be printable ASCII without spaces")
		}
	}
	return id, nil
}
