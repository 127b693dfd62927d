package main

import (
	"fmt"
	"log/slog"

	"github.com/masterkv/masterkv/internal/zkkv"
	"github.com/masterkv/masterkv/raftnode/config"
)

// openZooKeeper starts the ZooKeeper store's long-lived session.
func openZooKeeper(cfg config.Config, log *slog.Logger) (*zkkv.Store, func(), error) {
	servers, err := zkkv.ParseServers(cfg.ZKAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("config: MASTERKV_ZK_ADDRESS: %w", err)
	}
	s, err := zkkv.New(zkkv.Config{
		Servers: servers, Chroot: cfg.ZKChroot, Auth: cfg.ZKAuth,
		SessionTimeout: cfg.ZKTimeout, OpTimeout: cfg.ZKTimeout, Logger: log,
	})
	if err != nil {
		// Config.Validate checked every setting; what is left is the
		// servers' names (DNS).
		return nil, nil, fmt.Errorf("config: MASTERKV_ZK_ADDRESS: %w", err)
	}
	return s, s.Close, nil
}
