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
