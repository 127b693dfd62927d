package consulkv_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/internal/master"
	"github.com/masterkv/masterkv/internal/testserver"
)

// gate is a proxy in front of a real agent that lets the first pass PUTs
// of the KV API through and holds every later one until open is called:
// a writer paused part way through a cluster, as a lagging node is.
type gate struct {
	addr string

	mu     sync.Mutex
	pass   int
	puts   int
	held   chan struct{} // closed when the first PUT is held
	opened chan struct{}
	once   sync.Once
}

func startGate(t *testing.T, target string, pass int) *gate {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatalf("gate target: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g := &gate{pass: pass, held: make(chan struct{}), opened: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/kv/") {
			g.mu.Lock()
			g.puts++
			hold := g.puts > g.pass
			g.mu.Unlock()
			if hold {
				g.once.Do(func() { close(g.held) })
				<-g.opened
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(g.open)
	g.addr = strings.TrimPrefix(srv.URL, "http://")
	return g
}

func (g *gate) open() {
	select {
	case <-g.opened:
	default:
		close(g.opened)
	}
}

// TestPlainLaggingWriterNeverLeavesNewestEpochBesideOlderMaster is the
// failback race of the plain provider: failover B→C (epoch 10), failback
// C→B (epoch 12), and two writers of one datacenter. The epoch-10 writer
// is paused after its first k PUTs; the epoch-12 writer then writes in
// full; the epoch-10 writer goes on. Whatever k, Consul must end with every
// key of epoch 12 (master B), and the epoch-12 writer must report Written.
// A plan that skipped keys already holding B's values let the paused
// writer's remaining PUTs (their indexes still current) land after the
// newer epoch: /epoch=12 beside master C.
func TestPlainLaggingWriterNeverLeavesNewestEpochBesideOlderMaster(t *testing.T) {
	t.Parallel()
	a := startAgent(t, testserver.ConsulOptions{})
	b := master.Master{Host: "db-b.example", Port: 3306, IPv4: "10.0.0.2", IPv6: "fd00::2"}
	c := master.Master{Host: "db-c.example", Port: 3307, IPv4: "10.0.0.3", IPv6: "fd00::3"}
	for k := 0; k <= len(suffixes)+2; k++ {
		t.Run(fmt.Sprintf("paused after %d puts", k), func(t *testing.T) {
			alias := fmt.Sprintf("failback-%d", k)
			seed := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderPlain})
			write(t, seed, cluster(alias, b, 8))

			g := startGate(t, a.Addr(), k)
			lagging := newStore(t, a, consulkv.Config{Address: g.addr, Provider: consulkv.ProviderPlain})
			current := newStore(t, a, consulkv.Config{Provider: consulkv.ProviderPlain})

			var oldOut []kvstore.Outcome
			done := make(chan struct{})
			go func() { defer close(done); oldOut = write(t, lagging, cluster(alias, c, 10)) }()
			select {
			case <-g.held:
			case <-done: // it needed fewer PUTs than k: nothing to race with
			case <-time.After(10 * time.Second):
				t.Fatal("the epoch-10 writer neither finished nor reached the gate")
			}
			newOut := write(t, current, cluster(alias, b, 12))[0]
			g.open()
			<-done
			if t.Failed() {
				t.FailNow()
			}
			if newOut.Status != kvstore.Written {
				t.Errorf("epoch-12 writer: %v (err %v), want written", newOut.Status, newOut.Err)
			}
			if st := oldOut[0].Status; st != kvstore.Written && st != kvstore.Stale {
				t.Errorf("epoch-10 writer: %v (err %v), want written or stale", st, oldOut[0].Err)
			}
			if got, want := values(a.snapshot(t, alias)), pairsOf(cluster(alias, b, 12)); !mapsEqual(got, want) {
				t.Errorf("consul holds\n got %v\nwant %v (epoch 12, master B)", got, want)
			}
		})
	}
}
