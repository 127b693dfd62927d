// Package testserver starts real Consul agents and ZooKeeper servers for
// integration tests, on free loopback ports with their own data dirs.
//
// `make test` builds or installs both first. Without them a test is skipped
// with a message naming `make test`; with CI=true a missing dependency fails
// the test instead, so CI can never pass by skipping.
package testserver

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// missing skips or, in CI, fails the test for an absent dependency.
func missing(t testing.TB, what string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not available; run `make test`, which builds and installs the test servers", what)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing dependency fails the run)")
	}
	t.Skip(msg)
}

// given holds every port FreePort handed out in this process. The kernel
// may offer a port again as soon as its probe listener is closed, and a
// Consul agent given the same port twice (serf LAN and server RPC) refuses
// to start; that was seen once in a benchmark run.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback TCP port that was free a moment ago and that
// no earlier call in this process returned.
func FreePort(t testing.TB) int {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given.ports[port] {
			given.ports[port] = true
			return port
		}
	}
	t.Fatal("free port: 100 offers were all ports handed out before")
	return 0
}

// repoRoot finds the module root by walking up to go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "tools")); err == nil {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// logFile creates a file for a server's output that is printed when the
// test fails.
func logFile(t testing.TB, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatalf("create %s log: %v", name, err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			if b, err := os.ReadFile(f.Name()); err == nil {
				tail := b
				if len(tail) > 4000 {
					tail = tail[len(tail)-4000:]
				}
				t.Logf("--- %s log (tail) ---\n%s", name, tail)
			}
		}
	})
	return f
}
