package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"unicode"
)

// BodyID returns the "id" field of a failover body, JSON or form-encoded
// (told apart as the node does: JSON starts with "{"). It returns "" when
// there is none or the body does not parse; the node then judges the body.
func BodyID(body []byte) string {
	if bytes.HasPrefix(bytes.TrimLeftFunc(body, unicode.IsSpace), []byte("{")) {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &v) != nil {
			return ""
		}
		return v.ID
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	return form.Get("id")
}

// FailoverKey returns the idempotency key of a failover request: the
// body's id, else its Idempotency-Key header, else one derived from the
// body. The derived key also covers delivery, the signature's timestamp or
// else the trigger's request id: a key from the body alone would make a
// later, identical failover (A to B, back to A, to B again within the
// nodes' 24 h memory) a duplicate that commits nothing. Within one
// delivery the key is fixed, so the function's own retries are safe.
func FailoverKey(bodyID, header, delivery string, body []byte) string {
	if bodyID != "" {
		return bodyID
	}
	if header != "" {
		return header
	}
	h := sha256.New()
	h.Write([]byte(delivery))
	h.Write([]byte{0})
	h.Write(body)
	return "sha256-" + hex.EncodeToString(h.Sum(nil))
}

// MaxKeyBytes bounds an idempotency key, as the nodes do.
const MaxKeyBytes = 200

// CheckKey applies the nodes' rules for an idempotency key (at most 200
// bytes of printable ASCII without spaces) before it is sent as a header,
// so a bad id is a 400 here rather than a request the HTTP client refuses
// on every node.
func CheckKey(key string) error {
	if len(key) > MaxKeyBytes {
		return fmt.Errorf("id: must be at most %d bytes", MaxKeyBytes)
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return errors.New("id: must be printable ASCII without spaces")
		}
	}
	return nil
}
