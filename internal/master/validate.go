// Package master validates and completes the identity of a cluster master
// before it is proposed: alias, host, port and addresses.
//
// Every rejection is a *FieldError that names the field and the rule it
// broke, and matches ErrInvalid with errors.Is, so the HTTP layer can map all
// of them to 400 in one place.
package master

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalid matches every validation error of this package.
var ErrInvalid = errors.New("invalid input")

// MaxAliasBytes is the longest alias accepted.
const MaxAliasBytes = 200

// FieldError reports which field broke which rule.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// Prefixed returns err with its field name prefixed, as in
// "masters[3].port", or err unchanged when it is not a *FieldError.
func Prefixed(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + fe.Field, Rule: fe.Rule}
	}
	return err
}

// ValidateAlias checks a cluster alias against the one alias rule: what
// every store can hold and what orchestrator aliases look like (its default
// alias is the original master's host:port, so ":" and "." are allowed;
// DetectClusterAliasQuery aliases are names in any script).
//
//   - 1 to MaxAliasBytes bytes of valid UTF-8, not "." or "..", no "/": the
//     alias is one element of a Consul key and of a ZooKeeper path.
//   - Code points of the Basic Multilingual Plane only, and none of
//     U+E000-U+F8FF or U+FFF0-U+FFFF: ZooKeeper refuses U+0000-U+001F,
//     U+007F-U+009F, U+D800-U+F8FF and U+FFF0-U+FFFF in a path
//     (org.apache.zookeeper.common.PathUtils), and it reads a path as UTF-16,
//     where a code point above U+FFFF is a pair of surrogates (U+D800-U+DFFF).
//     The Go client checks fewer of these than the server, so a refused
//     path is only found when the publisher writes it, and then forever.
//   - Every code point graphic (a letter, mark, number, punctuation or
//     symbol of the Unicode tables Go was built with) and not a space: no
//     control, format (zero-width, bidi), private-use or unassigned code
//     point. Consul's HTTP API answers 400 to a URL path with a code point
//     unicode.IsPrint refuses (go-cleanhttp's PrintablePathCheckHandler), so
//     such a key, although a Txn writes it, cannot be read by consul-template
//     or deleted by hand; and a key looks like what it is in a log.
func ValidateAlias(alias string) error {
	switch {
	case alias == "":
		return invalid("cluster", "must not be empty")
	case len(alias) > MaxAliasBytes:
		return invalid("cluster", "must be at most %d bytes, got %d", MaxAliasBytes, len(alias))
	case !utf8.ValidString(alias):
		return invalid("cluster", "must be valid UTF-8")
	case alias == "." || alias == "..":
		return invalid("cluster", "must not be %q", alias)
	case strings.Contains(alias, "/"):
		return invalid("cluster", "must not contain '/'")
	}
	for _, r := range alias {
		if why := aliasRune(r); why != "" {
			return invalid("cluster", "must not contain %U (%s); an alias is letters, digits, marks, punctuation and symbols of the Basic Multilingual Plane, without spaces", r, why)
		}
	}
	return nil
}

// aliasRune names why r cannot be in an alias, or returns "".
func aliasRune(r rune) string {
	switch {
	case unicode.IsSpace(r):
		return "whitespace"
	case unicode.IsControl(r):
		return "a control character"
	case r > 0xFFFF:
		return "above U+FFFF, surrogates in ZooKeeper's UTF-16"
	case r >= 0xE000 && r <= 0xF8FF:
		return "private use, refused by ZooKeeper"
	case r >= 0xFFF0:
		return "refused by ZooKeeper"
	case !unicode.IsGraphic(r):
		return "not a graphic character"
	}
	return ""
}

// ValidateHost checks that host is an IP literal without a zone or a DNS
// name (RFC 1123 labels; "_" is tolerated because some internal naming
// schemes use it). A zone ("fe80::1%eth0") names an interface of the
// machine that reads it, not a master, and netip accepts any text after
// "%" (a newline and a config line, say), so it is refused.
func ValidateHost(host string) error {
	if host == "" {
		return invalid("host", "must not be empty")
	}
	if strings.Contains(host, "%") {
		return invalid("host", "must be an IP address without a zone (no %%...) or a DNS name")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > 253 {
		return invalid("host", "must be an IP address or a DNS name of at most 253 bytes")
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if err := validateLabel(label); err != nil {
			return invalid("host", "must be an IP address or a DNS name: %s", err)
		}
	}
	// C resolvers (inet_aton, so MySQL clients and proxies) read "127.1",
	// "2130706433" or "0x7f000001" as IPv4 addresses; a DNS name never ends
	// in a numeric label (RFC 3696 §2), so such a host is refused.
	if last := labels[len(labels)-1]; isNumericLabel(last) {
		return invalid("host", "must be an IP address in full dotted form or a DNS name; %q reads as a shorthand IPv4 address", host)
	}
	return nil
}

func isNumericLabel(label string) bool {
	digits := label
	if len(label) > 2 && (label[:2] == "0x" || label[:2] == "0X") {
		digits = label[2:]
		for _, c := range digits {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
		return true
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validateLabel(label string) error {
	if label == "" || len(label) > 63 {
		return fmt.Errorf("label %q must be 1 to 63 bytes", label)
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("label %q must not start or end with '-'", label)
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("label %q has character %q; allowed are letters, digits, '-' and '_'", label, c)
		}
	}
	return nil
}

// ValidatePort checks that port is in 1-65535.
func ValidatePort(port int) error {
	if port < 1 || port > 65535 {
		return invalid("port", "must be an integer from 1 to 65535, got %d", port)
	}
	return nil
}

// ValidateIPv4 checks a given ipv4 value; empty means unknown and is allowed.
func ValidateIPv4(s string) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return invalid("ipv4", "must be an IPv4 address such as 10.0.0.5, got %q", s)
	}
	return nil
}

// ValidateIPv6 checks a given ipv6 value; empty means unknown and is allowed.
func ValidateIPv6(s string) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return invalid("ipv6", "must be an IPv6 address such as fd00::5, got %q", s)
	}
	return nil
}

// Validate checks alias and every field of m.
func Validate(alias string, m Master) error {
	for _, err := range []error{
		ValidateAlias(alias), ValidateHost(m.Host), ValidatePort(m.Port),
		ValidateIPv4(m.IPv4), ValidateIPv6(m.IPv6),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// ValidateHostPort checks an "expected" value of the form host:port.
func ValidateHostPort(field, hostport string) error {
	i := strings.LastIndexByte(hostport, ':')
	if i <= 0 || i == len(hostport)-1 {
		return invalid(field, "must be host:port, got %q", hostport)
	}
	var port int
	if _, err := fmt.Sscanf(hostport[i+1:], "%d", &port); err != nil || fmt.Sprint(port) != hostport[i+1:] {
		return invalid(field, "must be host:port with a numeric port, got %q", hostport)
	}
	if err := ValidateHost(hostport[:i]); err != nil {
		return invalid(field, "must be host:port: %s", err.(*FieldError).Rule)
	}
	if err := ValidatePort(port); err != nil {
		return invalid(field, "must be host:port: %s", err.(*FieldError).Rule)
	}
	return nil
}
