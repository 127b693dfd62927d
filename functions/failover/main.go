// Command failover is the failover webhook Lambda function (Function URL
// and HTTP API): it authenticates the request and forwards it to the node
// group's POST /v1/failover. See internal/front/failover and
// docs/LAMBDA.md.
package main

import (
	"log/slog"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

func main() {
	var cfg failover.Config
	front.Start(&cfg, func(nodes *nodeclient.Client, log *slog.Logger) (any, error) {
		return failover.New(nodes, cfg.Credentials.Verifier(nil), log).Handle, nil
	})
}
