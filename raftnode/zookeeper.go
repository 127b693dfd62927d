package main

import (
	"errors"
	"log/slog"

	"github.com/masterkv/masterkv/raftnode/config"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// openZooKeeper connects the ZooKeeper store. Placeholder until zkkv lands.
func openZooKeeper(config.Config, *slog.Logger) (publish.Store, func(), error) {
	return nil, nil, errors.New("zookeeper store not wired yet")
}
