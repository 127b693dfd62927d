//go:build tools

// Package tools pins the linter `make test` runs: staticcheck from
// honnef.co/go/tools, built from the Go module proxy.
package tools

import _ "honnef.co/go/tools/cmd/staticcheck"
