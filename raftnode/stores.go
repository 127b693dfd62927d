package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/masterkv/masterkv/internal/consulkv"
	"github.com/masterkv/masterkv/internal/discovery"
	"github.com/masterkv/masterkv/internal/kvstore"
	"github.com/masterkv/masterkv/raftnode/config"
	"github.com/masterkv/masterkv/raftnode/crossdc"
	"github.com/masterkv/masterkv/raftnode/metrics"
	"github.com/masterkv/masterkv/raftnode/node"
	"github.com/masterkv/masterkv/raftnode/publish"
)

// startPublishers builds this node's external stores from the config, in
// orchestrator's order (ZooKeeper, then Consul; the internal store is the
// FSM itself), and runs one publisher per store and the epoch-generation
// guard over all of them until ctx ends. The returned close function
// releases the stores' connections.
func startPublishers(ctx context.Context, cfg config.Config, n *node.Node, layout discovery.Layout, m *metrics.Metrics, log *slog.Logger) ([]*publish.Publisher, *crossdc.Distributor, func(), error) {
	var stores []publish.Store
	var sources []node.EpochSource // every store the group publishes to, for the guard
	var closers []func()
	var consul *consulkv.Store
	if cfg.ZKAddress != "" {
		zs, closeZK, err := openZooKeeper(cfg, log)
		if err != nil {
			return nil, nil, nil, err
		}
		stores = append(stores, zs)
		sources = append(sources, zs)
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
		if cfg.ConsulCrossDataCenterDistribution {
			sources = append(sources, consulkv.EpochsEverywhere{Store: cs})
		} else {
			sources = append(sources, cs)
		}
	}
	observe := m.ObserveWrite
	if len(sources) > 0 {
		gens := startGenerations(ctx, cfg, n, layout, sources, log)
		observe = func(store string, seconds float64, outs []kvstore.Outcome) {
			m.ObserveWrite(store, seconds, outs)
			gens.ObserveWrite(store, seconds, outs)
		}
	}
	var pubs []*publish.Publisher
	var crossDC *crossdc.Distributor
	for _, s := range stores {
		p := publish.New(s, n.FSM(), publish.Config{
			Layout: layout, Ready: n.CaughtUp, RetryMax: cfg.StoreRetryMax,
			DriftInterval: cfg.DriftCheckInterval, DriftRepair: cfg.DriftRepair,
			Observe: observe, Logger: log,
		})
		go p.Run(ctx)
		pubs = append(pubs, p)
		log.Info("publishing to store", "store", s.Name())
		if s == publish.Store(consul) && cfg.ConsulCrossDataCenterDistribution {
			crossDC = crossdc.New(consul, n.FSM(), n, crossdc.Config{
				Layout: layout, Interval: cfg.ConsulSweepInterval, Concurrency: cfg.ConsulSweepConcurrency,
				RetryMax: cfg.StoreRetryMax, DriftRepair: cfg.DriftRepair, Observe: observe, Logger: log.With("component", "sweep"),
				Local: p,
			})
			go crossDC.Run(ctx)
		}
	}
	return pubs, crossDC, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// startGenerations runs the guard that keeps this group's epochs above
// every store's (README "Disaster recovery"): on the leader only, it reads
// sources once for a group that never surveyed them, and again when a
// publisher meets a newer epoch. It asks the other voters whether they
// know the rebase command through their GET /v1/status, with this node's
// first API token.
func startGenerations(ctx context.Context, cfg config.Config, n *node.Node, layout discovery.Layout, sources []node.EpochSource, log *slog.Logger) *node.Generations {
	token := ""
	if len(cfg.APITokens) > 0 {
		token = cfg.APITokens[0]
	}
	gens := node.NewGenerations(n, node.GenerationConfig{
		Prefix: layout.Prefix(), Stores: sources, Token: token, Logger: log,
	})
	go gens.Run(ctx)
	return gens
}
