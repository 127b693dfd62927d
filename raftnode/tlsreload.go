package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/masterkv/masterkv/internal/tlsfiles"
)

// reloadTLS keeps stores current until ctx ends: each is re-read on SIGHUP
// and, with interval above 0, when its files change. A failed reload keeps
// the loaded certificates and is logged; the node never stops for it.
func reloadTLS(ctx context.Context, stores []*tlsfiles.Store, interval time.Duration, log *slog.Logger) {
	if len(stores) == 0 {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading tls files")
				for _, s := range stores {
					s.ReloadAndLog(log)
				}
			}
		}
	}()
	if interval > 0 {
		for _, s := range stores {
			go s.Watch(ctx, interval, log)
		}
	}
}
