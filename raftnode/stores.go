package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/raftnode/config"
	"github.com/masterkv/masterkv/raftnode/metrics"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/publish"
	"github.com/masterkv/masterkv/raftnode/sweep"
)

// startPublishers builds this node's external stores from the config, in
// orchestrator's order (ZooKeeper, then Consul; the internal store is the
// FSM itself), and runs one publisher per store until ctx ends. The
// returned close function releases the stores' connections.
func startPublishers(ctx context.Context, cfg config.Config, n *node.Node, layout discovery.Layout, m *metrics.Metrics, log *slog.Logger) ([]*publish.Publisher, *sweep.Sweeper, func(), error) {
	var stores []publish.Store
	var closers []func()
	var consul *consulkv.Store
	if cfg.ZKAddress != "" {
		zs, closeZK, err := openZooKeeper(cfg, log)
		if err != nil {
			return nil, nil, nil, err
		}
		stores = append(stores, zs)
		closers = append(closers, closeZK)
	}
	if cfg.ConsulAddress != "" {
		cs, err := consulkv.New(consulkv.Config{
			Address: cfg.ConsulAddress, Scheme: cfg.ConsulScheme, Token: cfg.ConsulACLToken,
			Datacenter: cfg.ConsulDatacenter, Provider: strings.ReplaceAll(cfg.ConsulKVStoreProvider, "_", "-"),
			MaxOpsPerTxn: cfg.ConsulMaxKVsPerTransaction, Timeout: cfg.ConsulTimeout,
			CAFile: cfg.ConsulCAFile, CertFile: cfg.ConsulCertFile, KeyFile: cfg.ConsulKeyFile,
			TLSServerName: cfg.ConsulTLSServerName,
		})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("config: MASTERKV_CONSUL_*: %w", err)
		}
		stores = append(stores, cs)
		consul = cs
	}
	var pubs []*publish.Publisher
	var sweeper *sweep.Sweeper
	for _, s := range stores {
		p := publish.New(s, n.Store(), publish.Config{
			Layout: layout, Ready: n.CaughtUp, RetryMax: cfg.StoreRetryMax,
			DriftInterval: cfg.DriftCheckInterval, DriftRepair: cfg.DriftRepair,
			Observe: m.ObserveWrite, Logger: log,
		})
		go p.Run(ctx)
		pubs = append(pubs, p)
		log.Info("publishing to store", "store", s.Name())
		if s == publish.Store(consul) && cfg.ConsulCrossDataCenterDistribution {
			sweeper = sweep.New(consul, n.Store(), n, sweep.Config{
				Layout: layout, Interval: cfg.ConsulSweepInterval, Concurrency: cfg.ConsulSweepConcurrency,
				RetryMax: cfg.StoreRetryMax, DriftRepair: cfg.DriftRepair, Observe: m.ObserveWrite, Logger: log.With("component", "sweep"),
				Local: p,
			})
			go sweeper.Run(ctx)
		}
	}
	return pubs, sweeper, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}
