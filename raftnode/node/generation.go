package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masterkv/masterkv/internal/command"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/fsm"
)

// EpochSource is a store whose epochs the leader can read: one Consul
// datacenter (or all of them), one ZooKeeper ensemble.
type EpochSource interface {
	Name() string
	Epochs(ctx context.Context, prefix string, limit uint64) (kvstore.Epochs, error)
}

// GenerationConfig tunes the epoch-generation guard.
type GenerationConfig struct {
	// Prefix is the layout's key prefix, under which the stores are read.
	Prefix string
	// Stores are every store this group publishes to.
	Stores []EpochSource
	// VotersKnow returns nil once every voter applies command type typ
	// (DESIGN.md "Upgrade rule"); nil asks every voter's GET /v1/status
	// (see VotersKnowHTTP) with Token.
	VotersKnow func(ctx context.Context, typ string) error
	Token      string
	// Interval is how often the guard looks (default 1 s); StaleGap is the
	// least time between two surveys started by stale writes (default 1
	// min), since a hand-set epoch is stale on every write.
	Interval, StaleGap time.Duration
	// Timeout bounds one survey of every store (default 60 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Generations keeps this group's epochs above every store's: the leader of
// a fresh group (no rebase yet) reads the highest epoch in its
// stores and commits a rebase above it; later, a stale write met by one of
// the leader's publishers makes it read them again, and a store epoch
// above anything this group can have issued is healed with another rebase.
// See DESIGN.md "Epoch generations".
type Generations struct {
	n   *Node
	cfg GenerationConfig
	log *slog.Logger

	stale atomic.Bool   // a publisher on this node met a newer store epoch
	wake  chan struct{} // ObserveWrite's nudge

	mu     sync.Mutex
	status GenerationStatus
}

// GenerationStatus is what the guard last found, for status and logs.
type GenerationStatus struct {
	fsm.Generation
	LastSurveyAt time.Time `json:"last_survey_at,omitzero"`
	// StoreMax is the highest epoch the last survey found.
	StoreMax uint64 `json:"store_max"`
	// Refused lists epoch keys above fsm.MaxBase or not a number, as
	// key=value: hand-set values a rebase does not follow. Fix them by hand.
	Refused   []string `json:"refused,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

// NewGenerations returns the guard of n, whose findings n's Status then
// shows; Run starts it.
func NewGenerations(n *Node, cfg GenerationConfig) *Generations {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.StaleGap <= 0 {
		cfg.StaleGap = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = n.log
	}
	g := &Generations{n: n, cfg: cfg, log: cfg.Logger.With("component", "generations"), wake: make(chan struct{}, 1)}
	if g.cfg.VotersKnow == nil {
		g.cfg.VotersKnow = func(ctx context.Context, typ string) error { return n.VotersKnowHTTP(ctx, typ, cfg.Token) }
	}
	n.gens.Store(g)
	return g
}

// ObserveWrite has publish.Config.Observe's signature: chained into the
// publishers' observer, it notes a stale outcome (the store holds a newer
// epoch) on the leader, where only it can matter.
func (g *Generations) ObserveWrite(_ string, _ float64, outs []kvstore.Outcome) {
	for _, o := range outs {
		if o.Status == kvstore.Stale && g.n.IsLeader() {
			g.stale.Store(true)
			select {
			case g.wake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// Status returns what the guard last found.
func (g *Generations) Status() GenerationStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.status
	s.Generation = g.n.fsm.Generation()
	return s
}

// Run looks after the epoch base until ctx ends. Only the caught-up
// leader acts; followers only wait.
func (g *Generations) Run(ctx context.Context) {
	tick := time.NewTicker(g.cfg.Interval)
	defer tick.Stop()
	var retryAt, staleAt time.Time // earliest next survey after a failure, after a stale one
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-g.wake:
		}
		if !g.n.IsLeader() || !g.n.CaughtUp() || time.Now().Before(retryAt) {
			continue
		}
		reason := ""
		switch {
		case g.n.fsm.Generation().Index == 0:
			reason = firstSurvey
		case g.stale.Load() && !time.Now().Before(staleAt):
			reason = "stale write"
			staleAt = time.Now().Add(g.cfg.StaleGap)
		default:
			continue
		}
		g.stale.Store(false)
		if err := g.survey(ctx, reason); err != nil {
			g.log.Warn("epoch survey failed; will retry", "reason", reason, "err", err)
			retryAt = time.Now().Add(min(10*g.cfg.Interval, time.Minute))
		}
	}
}

// firstSurvey is the reason of the survey a group makes once: a fresh
// group's first leader (or the first leader of a release with generations).
const firstSurvey = "first survey"

// survey reads every store's highest epoch and commits a rebase above it
// when the group's epochs are not above it already: the first survey
// always commits one (which marks it done; Apply changes nothing when the
// epochs are above already), a survey after a stale write only when a
// store holds more than base + the leader's last index, i.e. more than
// this group can have issued (a lagging writer of this group is not a
// reason). The voters are asked first, so that during a rolling upgrade
// the stores are not read again and again for nothing.
func (g *Generations) survey(ctx context.Context, reason string) error {
	sctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := g.cfg.VotersKnow(sctx, command.Rebase.String()); err != nil {
		err = fmt.Errorf("not surveying until every voter knows the %s command (upgrade the others): %w", command.Rebase, err)
		g.setError(err)
		return err
	}
	found, unread, err := g.read(sctx)
	g.mu.Lock()
	g.status.LastSurveyAt, g.status.StoreMax, g.status.Refused = time.Now(), found.Max, found.Refused
	g.status.LastError = ""
	switch {
	case err != nil:
		g.status.LastError = err.Error()
	case unread != nil:
		g.status.LastError = "surveyed without: " + unread.Error()
	}
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if len(found.Refused) > 0 {
		g.log.Error("stores hold epochs no group generation wrote (above the limit or not a number); not following them, fix these keys by hand",
			"limit", fsm.MaxBase, "keys", found.Refused)
	}
	gen := g.n.fsm.Generation()
	issued := gen.Base + g.n.raft.LastIndex()
	if reason != firstSurvey && found.Max <= issued {
		return nil
	}
	res, err := g.n.Propose(sctx, command.Command{
		Type: command.Rebase, At: time.Now().UnixMilli(),
		Rebase: &command.RebasePayload{Above: found.Max, Reason: fmt.Sprintf("%s: %s", reason, found.Key)},
	})
	if err != nil {
		err = fmt.Errorf("commit rebase above %d: %w", found.Max, err)
		g.setError(err)
		return err
	}
	after := g.n.fsm.Generation()
	g.log.Info("epoch base committed", "reason", reason, "store_max", found.Max, "key", found.Key,
		"base", after.Base, "index", res.Index, "recommitted", len(res.Records))
	return nil
}

func (g *Generations) setError(err error) {
	g.mu.Lock()
	g.status.LastError = err.Error()
	g.mu.Unlock()
}

// read merges every store's epochs. A store that cannot be read is left
// out (logged, and returned as unread): the first leader of a rebuilt
// group should publish with the stores it reaches, and a stale write heals
// the others later. It fails only when no store could be read.
func (g *Generations) read(ctx context.Context) (all kvstore.Epochs, unread, err error) {
	var errs []error
	for _, s := range g.cfg.Stores {
		e, err := s.Epochs(ctx, g.cfg.Prefix, fsm.MaxBase)
		if err != nil {
			g.log.Warn("cannot read a store's epochs; leaving it out of this survey", "store", s.Name(), "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
			continue
		}
		all.Merge(e)
	}
	if len(errs) > 0 && len(errs) == len(g.cfg.Stores) {
		return all, nil, errors.Join(errs...)
	}
	return all, errors.Join(errs...), nil
}
