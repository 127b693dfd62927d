package master_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/masterkv/masterkv/internal/master"
)

// checkField fails unless err is nil when field is "", or a *FieldError that
// names field and matches master.ErrInvalid otherwise.
func checkField(t *testing.T, call string, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("%s = %v, want nil", call, err)
		}
		return
	}
	if err == nil {
		t.Errorf("%s = nil, want an error for field %q", call, field)
		return
	}
	var fe *master.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("%s = %T %v, want a *master.FieldError", call, err, err)
		return
	}
	if fe.Field != field {
		t.Errorf("%s field = %q, want %q (error %q)", call, fe.Field, field, err)
	}
	if fe.Rule == "" {
		t.Errorf("%s has an empty rule", call)
	}
	if !errors.Is(err, master.ErrInvalid) {
		t.Errorf("errors.Is(%s, master.ErrInvalid) = false, want true", call)
	}
	if want := field + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("%s.Error() = %q, want prefix %q", call, err.Error(), want)
	}
}

func TestValidateAlias(t *testing.T) {
	tests := []struct {
		name    string
		alias   string
		wantErr bool
	}{
		{"simple", "main", false},
		{"host port alias", "db-1:3306", false},
		{"dots inside", "a.b.c", false},
		{"leading dot", ".hidden", false},
		{"unicode", "kluster-ü", false},
		{"max length", strings.Repeat("a", master.MaxAliasBytes), false},
		{"empty", "", true},
		{"too long", strings.Repeat("a", master.MaxAliasBytes+1), true},
		{"too long in bytes", strings.Repeat("ü", master.MaxAliasBytes/2) + "x", true},
		{"space", "a b", true},
		{"leading space", " a", true},
		{"trailing newline", "a\n", true},
		{"tab", "a\tb", true},
		{"non-breaking space", "a\u00a0b", true},
		{"nul", "a\x00b", true},
		{"escape", "a\x1bb", true},
		{"del", "a\x7fb", true},
		{"c1 control", "a\u0085b", true},
		{"slash", "a/b", true},
		{"only slash", "/", true},
		{"dot", ".", true},
		{"dot dot", "..", true},
		{"invalid utf8", "a\xffb", true},
		{"truncated utf8", "\xc3", true},
		// Issue 10 item 2: what a store cannot hold or a reader cannot see.
		{"cjk", "集群-1", false},
		{"greek and symbols", "Ω+db=1~", false},
		{"cjk compatibility ideograph (U+F900, above ZooKeeper's range)", "a\uf900", false},
		{"fullwidth sign (U+FFE0)", "a\uffe0", false},
		{"private use U+E000", "a\ue000", true},
		{"private use U+F8FF", "\uf8ff", true},
		{"U+FFF0", "a\ufff0", true},
		{"replacement character U+FFFD", "a\ufffd", true},
		{"U+FFFE", "a\ufffe", true},
		{"U+FFFF", "a\uffff", true},
		{"zero-width space", "a\u200bb", true},
		{"bidi override", "a\u202eb", true},
		{"byte order mark", "\ufeffa", true},
		{"line separator", "a\u2028b", true},
		{"unassigned U+0378", "a\u0378", true},
		{"emoji U+1F600 (UTF-16 surrogates in ZooKeeper)", "a\U0001F600", true},
		{"U+10000", "a\U00010000", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field := ""
			if tt.wantErr {
				field = "cluster"
			}
			checkField(t, fmt.Sprintf("ValidateAlias(%q)", tt.alias), master.ValidateAlias(tt.alias), field)
		})
	}
}

func TestValidateHost(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 4 labels of 63 bytes and 3 dots: 255 bytes.
	tooLong := strings.Join([]string{label63, label63, label63, label63}, ".")
	// 3 labels of 63, one of 61 and 3 dots: 253 bytes, the longest name.
	longest := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".")
	tests := []struct {
		name    string
		host    string
		wantErr bool
	}{
		{"short name", "db1", false},
		{"fqdn", "db1.example.com", false},
		{"uppercase", "DB1.Example.COM", false},
		{"hyphen inside", "db-1.dc-2", false},
		{"underscore", "db_1.internal", false},
		{"digits label", "1db.example", false},
		{"label of 63", label63 + ".example", false},
		{"253 bytes", longest, false},
		{"ipv4", "10.0.0.5", false},
		{"ipv6", "fd00::5", false},
		{"ipv6 full", "2001:db8:0:0:0:0:0:1", false},
		{"empty", "", true},
		{"label of 64", strings.Repeat("a", 64) + ".example", true},
		{"254 bytes", longest + "b", true},
		{"255 bytes", tooLong, true},
		{"leading hyphen", "-db.example", true},
		{"trailing hyphen", "db-.example", true},
		{"empty label", "db..example", true},
		{"leading dot", ".db", true},
		{"space", "db 1", true},
		{"slash", "db/1", true},
		{"colon in name", "db1:3306", true},
		{"bracketed ipv6", "[fd00::5]", true},
		{"at sign", "user@db", true},
		{"non ascii", "dö.example", true},
		{"ipv4 with port", "10.0.0.5:3306", true},
		// Issue 10 item 1: no zone, whatever follows the %.
		{"ipv6 zone", "fe80::1%eth0", true},
		{"ipv6 zone carrying a config line", "fe80::1%x\nserver evil 203.0.113.66:3306 check", true},
		{"ipv6 zone of 60 KB", "fe80::1%" + strings.Repeat("z", 60<<10), true},
		{"ipv6 empty zone", "fd00::5%", true},
		{"ipv4 with a zone", "10.0.0.5%eth0", true},
		{"name with a percent", "db1%eth0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field := ""
			if tt.wantErr {
				field = "host"
			}
			err := master.ValidateHost(tt.host)
			checkField(t, fmt.Sprintf("ValidateHost(%.40q)", tt.host), err, field)
			if strings.Contains(tt.host, "%") && err != nil && !strings.Contains(err.Error(), "zone") {
				t.Errorf("ValidateHost(%.40q) = %q, want it to name the zone rule", tt.host, err)
			}
		})
	}
}

func TestValidatePort(t *testing.T) {
	tests := []struct {
		port    int
		wantErr bool
	}{
		{1, false},
		{3306, false},
		{65535, false},
		{0, true},
		{-1, true},
		{-3306, true},
		{65536, true},
		{1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.port), func(t *testing.T) {
			field := ""
			if tt.wantErr {
				field = "port"
			}
			checkField(t, fmt.Sprintf("ValidatePort(%d)", tt.port), master.ValidatePort(tt.port), field)
		})
	}
}

func TestValidateIPv4(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"", false},
		{"10.0.0.5", false},
		{"255.255.255.255", false},
		{"fd00::5", true},
		{"::ffff:1.2.3.4", true},
		{"256.0.0.1", true},
		{"10.0.0", true},
		{"010.0.0.5", true},
		{"10.0.0.5 ", true},
		{"db1", true},
		{"10.0.0.5/24", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			field := ""
			if tt.wantErr {
				field = "ipv4"
			}
			checkField(t, fmt.Sprintf("ValidateIPv4(%q)", tt.in), master.ValidateIPv4(tt.in), field)
		})
	}
}

func TestValidateIPv6(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"", false},
		{"fd00::5", false},
		{"2001:db8::1", false},
		{"::1", false},
		{"10.0.0.5", true},
		{"::ffff:1.2.3.4", true},
		{"fe80::1%eth0", true},
		{"[fd00::5]", true},
		{"fd00::5::1", true},
		{"gggg::1", true},
		{"db1", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			field := ""
			if tt.wantErr {
				field = "ipv6"
			}
			checkField(t, fmt.Sprintf("ValidateIPv6(%q)", tt.in), master.ValidateIPv6(tt.in), field)
		})
	}
}

func TestValidate(t *testing.T) {
	ok := master.Master{Host: "db1.example.com", Port: 3306, IPv4: "10.0.0.5", IPv6: "fd00::5"}
	with := func(f func(*master.Master)) master.Master {
		m := ok
		f(&m)
		return m
	}
	tests := []struct {
		name      string
		alias     string
		m         master.Master
		wantField string
	}{
		{"all valid", "main", ok, ""},
		{"no addresses", "main", master.Master{Host: "db1", Port: 3306}, ""},
		{"bad alias", "a/b", ok, "cluster"},
		{"bad host", "main", with(func(m *master.Master) { m.Host = "" }), "host"},
		{"bad port", "main", with(func(m *master.Master) { m.Port = 0 }), "port"},
		{"bad ipv4", "main", with(func(m *master.Master) { m.IPv4 = "fd00::5" }), "ipv4"},
		{"bad ipv6", "main", with(func(m *master.Master) { m.IPv6 = "10.0.0.5" }), "ipv6"},
		{"alias reported first", "", master.Master{}, "cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkField(t, fmt.Sprintf("Validate(%q, %+v)", tt.alias, tt.m), master.Validate(tt.alias, tt.m), tt.wantField)
		})
	}
}

func TestValidateHostPort(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"db1:3306", false},
		{"db1.example.com:1", false},
		{"db1:65535", false},
		{"10.0.0.5:3306", false},
		// HostPort writes IPv6 without brackets; the last colon splits.
		{"fd00::5:3306", false},
		{"", true},
		{"db1", true},
		{"db1:", true},
		{":3306", true},
		{"db1:0", true},
		{"db1:65536", true},
		{"db1:-1", true},
		{"db1:+3306", true},
		{"db1:03306", true},
		{"db1:33a", true},
		{"db1:3306 ", true},
		{"db 1:3306", true},
		{"-db:3306", true},
		{"[fd00::5]:3306", true},
		{"fe80::1%eth0:3306", true},
		{"fe80::1%x\nserver evil:3306", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			field := ""
			if tt.wantErr {
				field = "expected"
			}
			checkField(t, fmt.Sprintf("ValidateHostPort(%q)", tt.in), master.ValidateHostPort("expected", tt.in), field)
		})
	}
}

func TestPrefixed(t *testing.T) {
	t.Run("field error", func(t *testing.T) {
		orig := master.ValidatePort(0)
		got := master.Prefixed("masters[3].", orig)
		checkField(t, "Prefixed(ValidatePort(0))", got, "masters[3].port")
		var before, after *master.FieldError
		if errors.As(orig, &before) && errors.As(got, &after) && before.Rule != after.Rule {
			t.Errorf("rule = %q, want unchanged %q", after.Rule, before.Rule)
		}
		if before == nil || before.Field != "port" {
			t.Errorf("original error changed to %v, want field port kept", orig)
		}
	})
	t.Run("wrapped field error", func(t *testing.T) {
		got := master.Prefixed("x.", fmt.Errorf("ctx: %w", master.ValidateIPv4("bad")))
		checkField(t, "Prefixed(wrapped)", got, "x.ipv4")
	})
	t.Run("other error unchanged", func(t *testing.T) {
		orig := errors.New("boom")
		if got := master.Prefixed("x.", orig); got != orig {
			t.Errorf("Prefixed(other) = %v, want the same error %v", got, orig)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if got := master.Prefixed("x.", nil); got != nil {
			t.Errorf("Prefixed(nil) = %v, want nil", got)
		}
	})
}

func TestFieldErrorIsOnlyErrInvalid(t *testing.T) {
	err := master.ValidatePort(0)
	if errors.Is(err, errors.New("invalid input")) {
		t.Errorf("errors.Is(%v, other error) = true, want false", err)
	}
}

// TestValidateHostShorthandIPv4 refuses hosts that C resolvers read as IPv4
// addresses although they are neither Go IP literals nor DNS names.
func TestValidateHostShorthandIPv4(t *testing.T) {
	for _, host := range []string{"127.1", "127.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "db.0x1f"} {
		if err := master.ValidateHost(host); err == nil || !strings.Contains(err.Error(), "host:") {
			t.Errorf("ValidateHost(%q) = %v, want a host error", host, err)
		}
	}
	for _, host := range []string{"db1", "db-1.example.com", "1db.example.com", "0xdb.example.com", "10.0.0.5"} {
		if err := master.ValidateHost(host); err != nil {
			t.Errorf("ValidateHost(%q) = %v, want nil", host, err)
		}
	}
}
