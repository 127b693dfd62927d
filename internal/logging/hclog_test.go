package logging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/masterkv/masterkv/internal/logging"
)

func TestHCLogWritesToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := logging.HCLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Named("raft").With("term", 3).Warn("heartbeat timeout", "peer", "n2")
	l.Debug("hidden")
	l.Trace("hidden too")
	out := buf.String()
	for _, want := range []string{"level=WARN", `msg="heartbeat timeout"`, "logger=raft", "term=3", "peer=n2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("output %q has messages below the slog level", out)
	}
	if l.IsDebug() || !l.IsInfo() || l.GetLevel() != hclog.Info {
		t.Errorf("IsDebug %v IsInfo %v GetLevel %v, want false true info", l.IsDebug(), l.IsInfo(), l.GetLevel())
	}
	l.StandardLogger(nil).Print("from the standard logger")
	if !strings.Contains(buf.String(), "from the standard logger") {
		t.Errorf("standard logger output missing: %q", buf.String())
	}
}

// TestHCLogRendersFormatArgs: raft logs some values as hclog.Fmt (the
// initial configuration's servers); they were printed as the raw format
// and its arguments, servers="[%+v [...]]".
func TestHCLogRendersFormatArgs(t *testing.T) {
	var buf bytes.Buffer
	l := logging.HCLog(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Info("initial configuration", "index", 1, "servers", hclog.Fmt("%+v", []struct{ ID string }{{"n1"}, {"n2"}}))
	out := buf.String()
	if !strings.Contains(out, `servers="[{ID:n1} {ID:n2}]"`) || strings.Contains(out, "%+v") {
		t.Errorf("output %q, want servers rendered as [{ID:n1} {ID:n2}]", out)
	}
}
