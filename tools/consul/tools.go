//go:build tools

// Package tools pins the Consul server that the integration tests run:
// v1.15.4, the last MPL-2.0 release line, built from the Go module proxy.
package tools

import _ "github.com/hashicorp/consul"
