package httpapi

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// forwardKeyPrefix starts the idempotency key a follower gives a forwarded
// write that came without one.
const forwardKeyPrefix = "fwd-"

// keyed returns r carrying an idempotency key, and the key when this node
// made it up. A forwarded write may be sent to several leaders (see
// forward) and served here at last; without one key on every copy, a copy
// the old leader committed before it froze and the copy the new leader
// gets would both commit. A write that names its id in the header or body
// keeps it; one without is given a random key in the Idempotency-Key
// header.
func (s *Server) keyed(r *http.Request, body []byte) (*http.Request, string) {
	if r.Header.Get("Idempotency-Key") != "" || bodyID(r, body) != "" {
		return r, ""
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	key := forwardKeyPrefix + hex.EncodeToString(b[:])
	r2 := r.Clone(r.Context())
	r2.Header.Set("Idempotency-Key", key)
	return r2, key
}

// bodyID is the id a write's body names, "" when none. The handler has
// already validated the body; the orchestrator-compatible submit takes its
// key from the header only.
func bodyID(r *http.Request, body []byte) string {
	if strings.HasPrefix(r.URL.Path, orchestratorAPIPrefix) {
		return ""
	}
	if isJSON(body) {
		var in struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &in)
		return in.ID
	}
	form, _ := url.ParseQuery(string(body))
	return form.Get("id")
}

// keyHidden holds a failover receipt answered under a key this node made
// up, and writes it without that "id": the caller gets the answer the
// leader gives a write without a key. Only the failover receipt names its
// id, and it is small; populate and submit answers pass through unbuffered.
type keyHidden struct {
	w      http.ResponseWriter
	key    string
	header http.Header
	status int
	body   bytes.Buffer
}

func hideKey(w http.ResponseWriter, key string) *keyHidden {
	return &keyHidden{w: w, key: key, header: w.Header().Clone()}
}

func (k *keyHidden) Header() http.Header { return k.header }

func (k *keyHidden) WriteHeader(status int) {
	if k.status == 0 {
		k.status = status
	}
}

func (k *keyHidden) Write(b []byte) (int, error) {
	k.WriteHeader(http.StatusOK)
	return k.body.Write(b)
}

// finish writes the held answer. writeJSON indents the receipt by two
// spaces, and the key is hex: its field is exactly `,\n  "id": "<key>"`.
func (k *keyHidden) finish() {
	if k.status == 0 {
		return
	}
	for name, v := range k.header {
		k.w.Header()[name] = v
	}
	k.w.WriteHeader(k.status)
	_, _ = k.w.Write(bytes.Replace(k.body.Bytes(), []byte(",\n  \"id\": \""+k.key+"\""), nil, 1))
}
