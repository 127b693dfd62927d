package webhook_test

import (
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/webhook"
)

func TestBodyID(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"cluster":"a","id":"k-1"}`, "k-1"},
		{"  \n{\"id\":\"k-2\"}", "k-2"},
		{`{"cluster":"a"}`, ""},
		{`{"id":7}`, ""},
		{`{not json`, ""},
		{"cluster=a&id=k-3", "k-3"},
		{"cluster=a&host=h", ""},
		{"id=%zz", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := webhook.BodyID([]byte(tc.body)); got != tc.want {
			t.Errorf("BodyID(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestFailoverKey(t *testing.T) {
	body := []byte("cluster=a&host=10.0.0.2&port=3306")
	derived := webhook.FailoverKey("", "", "req-1", body)
	tests := []struct {
		name                     string
		bodyID, header, delivery string
		body                     []byte
		want                     string
	}{
		{"body id first", "from-body", "from-header", "req-1", body, "from-body"},
		{"then the header", "", "from-header", "req-1", body, "from-header"},
		{"else derived", "", "", "req-1", body, derived},
	}
	for _, tc := range tests {
		if got := webhook.FailoverKey(tc.bodyID, tc.header, tc.delivery, tc.body); got != tc.want {
			t.Errorf("%s: FailoverKey = %q, want %q", tc.name, got, tc.want)
		}
	}
	if !strings.HasPrefix(derived, "sha256-") || len(derived) != len("sha256-")+64 {
		t.Errorf("derived key %q, want sha256- and 64 hex digits", derived)
	}
	// The same delivery retried keeps its key; another delivery of the
	// same body (a later failback to the same master) gets a new one, and
	// so does another body.
	if again := webhook.FailoverKey("", "", "req-1", body); again != derived {
		t.Errorf("same delivery: key %q, then %q", derived, again)
	}
	if other := webhook.FailoverKey("", "", "req-2", body); other == derived {
		t.Errorf("another delivery of the same body got the same key %q", other)
	}
	if other := webhook.FailoverKey("", "", "req-1", append(body, '0')); other == derived {
		t.Errorf("another body got the same key %q", other)
	}
}

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"failover-orders-4711": true, strings.Repeat("k", 200): true, "sha256-" + strings.Repeat("a", 64): true,
		strings.Repeat("k", 201): false, "a b": false, "a\nb": false, "é": false, "": true,
	} {
		if err := webhook.CheckKey(key); (err == nil) != ok {
			t.Errorf("CheckKey(%.20q) = %v, want ok %v", key, err, ok)
		}
	}
}
