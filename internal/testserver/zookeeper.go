package testserver

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Debian's zookeeper package (libzookeeper-java) installs these. The jar's
// manifest Class-Path pulls in its own dependencies (netty, jute, slf4j-api
// ...), so conf dir + zookeeper.jar is enough to run the server. Without an
// slf4j binding it logs nothing, so zkLogBinding is added when present
// (libslf4j-java, a dependency of libzookeeper-java) to get a log to show
// when a test fails.
const (
	zkConfDir    = "/etc/zookeeper/conf"
	zkJar        = "/usr/share/java/zookeeper.jar"
	zkLogBinding = "/usr/share/java/slf4j-simple.jar"
	zkMainClass  = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
)

// ZooKeeper is one standalone ZooKeeper server running as a real JVM
// process with its data on disk, so Stop and Start keep its znodes.
type ZooKeeper struct {
	t         testing.TB
	Port      int
	dir       string
	java      string
	classpath string
	cmd       *exec.Cmd
	log       *os.File
	exited    chan struct{}
}

// StartZooKeeper starts a standalone server on a free loopback port and
// waits until it answers "imok" to "ruok" and serves requests. It is
// killed when the test ends.
func StartZooKeeper(t testing.TB) *ZooKeeper {
	t.Helper()
	java, err := exec.LookPath("java")
	if err == nil {
		_, err = os.Stat(zkJar)
	}
	if err != nil {
		missing(t, "ZooKeeper (Debian package zookeeper)")
	}
	cp := []string{zkConfDir, zkJar}
	if _, err := os.Stat(zkLogBinding); err == nil {
		cp = append(cp, zkLogBinding)
	}
	z := &ZooKeeper{t: t, Port: FreePort(t), dir: t.TempDir(), java: java, classpath: strings.Join(cp, ":")}
	// tickTime 500 ms allows session timeouts of 1-10 s; forceSync=no and a
	// small preAllocSize keep the disk cost of a test server down.
	cfg := fmt.Sprintf(`tickTime=500
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
forceSync=no
preAllocSize=1024
4lw.commands.whitelist=ruok,srvr
admin.enableServer=false
`, filepath.Join(z.dir, "data"), z.Port)
	if err := os.WriteFile(z.cfgPath(), []byte(cfg), 0o600); err != nil {
		t.Fatalf("write zookeeper config: %v", err)
	}
	z.log = logFile(t, fmt.Sprintf("zookeeper-%d", z.Port))
	z.Start()
	t.Cleanup(z.Stop)
	return z
}

func (z *ZooKeeper) cfgPath() string { return filepath.Join(z.dir, "zoo.cfg") }

// Addr is the client address, "127.0.0.1:port".
func (z *ZooKeeper) Addr() string { return fmt.Sprintf("127.0.0.1:%d", z.Port) }

// Start (re)starts the server on its port and data dir and waits up to 30 s
// until it answers "ruok" and serves requests.
func (z *ZooKeeper) Start() {
	z.t.Helper()
	z.cmd = exec.Command(z.java,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
		"-cp", z.classpath, zkMainClass, z.cfgPath())
	z.cmd.Dir = z.dir
	z.cmd.Stdout, z.cmd.Stderr = z.log, z.log
	if err := z.cmd.Start(); err != nil {
		z.t.Fatalf("start zookeeper: %v", err)
	}
	z.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(z.cmd, z.exited)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-z.exited:
			z.cmd = nil
			z.t.Fatalf("zookeeper on port %d exited during start", z.Port)
		default:
		}
		if z.ready() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	z.Stop()
	z.t.Fatalf("zookeeper on port %d was not ready (ruok, srvr) within 30s", z.Port)
}

// ready reports whether the server answers "imok" to "ruok" and serves
// requests. ruok only shows the process is listening: for a moment after
// that it still closes client sessions ("ZooKeeperServer not running"),
// and srvr says so until it serves.
func (z *ZooKeeper) ready() bool {
	return z.fourLetter("ruok") == "imok" && strings.Contains(z.fourLetter("srvr"), "Mode: ")
}

// fourLetter sends a four-letter word and returns the answer, "" on error.
func (z *ZooKeeper) fourLetter(word string) string {
	conn, err := net.DialTimeout("tcp", z.Addr(), time.Second)
	if err != nil {
		return ""
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(word)); err != nil {
		return ""
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return ""
	}
	return string(b)
}

// Stop kills the server and keeps its data; Start brings it back.
func (z *ZooKeeper) Stop() {
	if z.cmd == nil || z.cmd.Process == nil {
		return
	}
	_ = z.cmd.Process.Kill()
	<-z.exited
	z.cmd = nil
}
