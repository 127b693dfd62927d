package command_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/master"
)

var (
	m1 = master.Master{Host: "db1.example.com", Port: 3306, IPv4: "10.0.0.5", IPv6: "fd00::5"}
	m2 = master.Master{Host: "db2", Port: 3307}
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    command.Command
	}{
		{"failover", command.Command{
			Type: command.Failover, ID: "req-1", At: 1700000000123,
			Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: "main", Master: m1}, Expected: "db0:3306"},
		}},
		{"failover without id or expected", command.Command{
			Type: command.Failover, At: 1,
			Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: "db-1:3306", Master: m2}},
		}},
		{"submit all", command.Command{Type: command.Submit, ID: "s", At: 2, Submit: &command.SubmitPayload{}}},
		{"submit one", command.Command{Type: command.Submit, At: 3, Submit: &command.SubmitPayload{Cluster: "main"}}},
		{"populate", command.Command{Type: command.Populate, ID: "p", At: 4, Populate: &command.PopulatePayload{
			Masters: []command.Entry{{Cluster: "a", Master: m1}, {Cluster: "b", Master: m2}},
		}}},
		{"populate empty", command.Command{Type: command.Populate, At: 5, Populate: &command.PopulatePayload{Masters: []command.Entry{}}}},
		{"rebase", command.Command{Type: command.Rebase, At: 6, Rebase: &command.RebasePayload{Above: 1_000_000, Reason: "bootstrap survey"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := command.Encode(tt.c)
			if err != nil {
				t.Fatalf("Encode() error = %v", err)
			}
			got, err := command.Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s) error = %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.c) {
				t.Errorf("Decode(Encode(c)) = %+v, want %+v", got, tt.c)
			}
		})
	}
}

func TestEncodeWritesTypeByName(t *testing.T) {
	b, err := command.Encode(command.Command{Type: command.Submit, At: 7, Submit: &command.SubmitPayload{}})
	if err != nil {
		t.Fatalf("Encode() error = %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("Encode() wrote invalid JSON %s: %v", b, err)
	}
	if got, want := raw["type"], "submit"; got != want {
		t.Errorf("encoded type = %v, want %q (entry %s)", got, want, b)
	}
	for _, absent := range []string{"id", "failover", "populate"} {
		if _, ok := raw[absent]; ok {
			t.Errorf("encoded entry %s has %q, want it omitted", b, absent)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"garbage", "not json"},
		{"truncated", `{"type":"failover","failover":{`},
		{"array", `[1,2]`},
		{"null", `null`},
		{"empty object", `{}`},
		{"unknown type name", `{"type":"rollback","at":1,"failover":{"cluster":"a","master":{"host":"h","port":1}}}`},
		{"explicit unknown", `{"type":"unknown","at":1,"submit":{}}`},
		{"explicit unknown marked ignorable", `{"type":"unknown","ignorable":true,"at":1}`},
		{"no type marked ignorable", `{"ignorable":true,"at":1}`},
		{"unknown type not marked ignorable", `{"type":"forget","ignorable":false,"at":1,"forget":{"cluster":"a"}}`},
		{"numeric type", `{"type":1,"at":1,"failover":{"cluster":"a","master":{"host":"h","port":1}}}`},
		{"failover without payload", `{"type":"failover","at":1}`},
		{"failover with null payload", `{"type":"failover","at":1,"failover":null}`},
		{"submit without payload", `{"type":"submit","at":1}`},
		{"populate without payload", `{"type":"populate","at":1}`},
		{"rebase without payload", `{"type":"rebase","at":1}`},
		{"payload of another type", `{"type":"failover","at":1,"submit":{}}`},
		{"wrong field type", `{"type":"submit","at":"yesterday","submit":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := command.Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, want an error", tt.in, got)
			}
			if !strings.HasPrefix(err.Error(), "decode command: ") {
				t.Errorf("Decode(%q) error = %q, want prefix %q", tt.in, err, "decode command: ")
			}
			if !reflect.DeepEqual(got, command.Command{}) {
				t.Errorf("Decode(%q) = %+v with error, want the zero Command", tt.in, got)
			}
		})
	}
}

// TestDecodeUnknownIgnorable: a newer release's command marked ignorable
// decodes on this release as Unknown with its name, for Apply to skip; a
// known type decodes as usual whatever the flag says.
func TestDecodeUnknownIgnorable(t *testing.T) {
	in := `{"type":"forget","ignorable":true,"id":"f","at":7,"forget":{"cluster":"a"}}`
	got, err := command.Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode(%s) error = %v, want nil", in, err)
	}
	want := command.Command{Type: command.Unknown, TypeName: "forget", Ignorable: true, ID: "f", At: 7}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(%s) = %+v, want %+v", in, got, want)
	}

	known := command.Command{Type: command.Submit, Ignorable: true, At: 8, Submit: &command.SubmitPayload{Cluster: "a"}}
	b, err := command.Encode(known)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := command.Decode(b); err != nil || !reflect.DeepEqual(got, known) {
		t.Errorf("Decode(%s) = %+v, %v, want %+v, nil", b, got, err, known)
	}
	if !strings.Contains(string(b), `"ignorable":true`) {
		t.Errorf("Encode(%+v) = %s, want the ignorable flag written", known, b)
	}
	b, _ = command.Encode(command.Command{Type: command.Submit, At: 8, Submit: &command.SubmitPayload{}})
	if strings.Contains(string(b), "ignorable") || strings.Contains(string(b), "TypeName") {
		t.Errorf("Encode of a plain command = %s, want neither the flag nor the type name", b)
	}
}

func TestTypeZeroValueIsUnknown(t *testing.T) {
	var typ command.Type
	if typ != command.Unknown {
		t.Errorf("zero Type = %v, want Unknown", typ)
	}
	var c command.Command
	if c.Type != command.Unknown {
		t.Errorf("zero Command.Type = %v, want Unknown", c.Type)
	}
}

func TestTypeText(t *testing.T) {
	tests := []struct {
		typ  command.Type
		want string
	}{
		{command.Unknown, "unknown"},
		{command.Failover, "failover"},
		{command.Submit, "submit"},
		{command.Populate, "populate"},
		{command.Rebase, "rebase"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.typ.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			b, err := tt.typ.MarshalText()
			if err != nil || string(b) != tt.want {
				t.Errorf("MarshalText() = %q, %v, want %q, nil", b, err, tt.want)
			}
			got := command.Type(255)
			if err := got.UnmarshalText([]byte(tt.want)); err != nil || got != tt.typ {
				t.Errorf("UnmarshalText(%q) = %v, %v, want %v, nil", tt.want, got, err, tt.typ)
			}
		})
	}
}

func TestTypeOutOfRange(t *testing.T) {
	typ := command.Type(9)
	if got, want := typ.String(), "type(9)"; got != want {
		t.Errorf("Type(9).String() = %q, want %q", got, want)
	}
}

func TestUnmarshalTextUnknownName(t *testing.T) {
	for _, name := range []string{"", "rollback", "Failover", "FAILOVER", " failover", "type(1)"} {
		t.Run(name, func(t *testing.T) {
			got := command.Failover
			if err := got.UnmarshalText([]byte(name)); err != nil {
				t.Fatalf("UnmarshalText(%q) error = %v, want nil", name, err)
			}
			if got != command.Unknown {
				t.Errorf("UnmarshalText(%q) = %v, want Unknown", name, got)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	base := command.Command{
		Type: command.Failover, ID: "req-1", At: 1000,
		Failover: &command.FailoverPayload{Entry: command.Entry{Cluster: "main", Master: m1}, Expected: "db0:3306"},
	}
	edit := func(f func(*command.Command)) command.Command {
		c := base
		p := *base.Failover
		c.Failover = &p
		f(&c)
		return c
	}
	fp := command.Fingerprint(base)
	if len(fp) != 32 {
		t.Errorf("Fingerprint() = %q, want 32 hex characters", fp)
	}

	same := []struct {
		name string
		c    command.Command
	}{
		{"identical", edit(func(c *command.Command) {})},
		{"other id", edit(func(c *command.Command) { c.ID = "req-2" })},
		{"no id", edit(func(c *command.Command) { c.ID = "" })},
		{"other clock", edit(func(c *command.Command) { c.At = 999999 })},
	}
	for _, tt := range same {
		t.Run("same/"+tt.name, func(t *testing.T) {
			if got := command.Fingerprint(tt.c); got != fp {
				t.Errorf("Fingerprint() = %s, want %s as for the base command", got, fp)
			}
		})
	}

	different := []struct {
		name string
		c    command.Command
	}{
		{"cluster", edit(func(c *command.Command) { c.Failover.Cluster = "other" })},
		{"host", edit(func(c *command.Command) { c.Failover.Master.Host = "db9" })},
		{"port", edit(func(c *command.Command) { c.Failover.Master.Port = 3307 })},
		{"ipv4", edit(func(c *command.Command) { c.Failover.Master.IPv4 = "" })},
		{"ipv6", edit(func(c *command.Command) { c.Failover.Master.IPv6 = "fd00::6" })},
		{"expected", edit(func(c *command.Command) { c.Failover.Expected = "" })},
		{"type and payload", command.Command{Type: command.Submit, ID: "req-1", At: 1000, Submit: &command.SubmitPayload{}}},
	}
	for _, tt := range different {
		t.Run("different/"+tt.name, func(t *testing.T) {
			if got := command.Fingerprint(tt.c); got == fp {
				t.Errorf("Fingerprint() = %s, the same as the base command; want a different one", got)
			}
		})
	}

	if base.ID != "req-1" || base.At != 1000 {
		t.Errorf("Fingerprint modified its argument: ID %q At %d", base.ID, base.At)
	}
}

func TestFingerprintSubmitScope(t *testing.T) {
	all := command.Fingerprint(command.Command{Type: command.Submit, Submit: &command.SubmitPayload{}})
	one := command.Fingerprint(command.Command{Type: command.Submit, Submit: &command.SubmitPayload{Cluster: "main"}})
	if all == one {
		t.Errorf("Fingerprint(submit all) = Fingerprint(submit main) = %s, want them to differ", all)
	}
}

// TestKnownTypes: status lists every type this release applies, by the
// name the log uses, and never the zero Unknown.
func TestKnownTypes(t *testing.T) {
	got := command.KnownTypes()
	want := []string{"failover", "submit", "populate", "rebase"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KnownTypes() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if command.KnownTypes()[0] != "failover" {
		t.Error("KnownTypes() returns a slice the caller can change")
	}
}
