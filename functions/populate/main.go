// Command populate is the scheduled populate Lambda function (EventBridge
// Scheduler or a classic scheduled rule): it posts the current masters to
// the node group's POST /v1/populate. See internal/front/populate and
// docs/LAMBDA.md.
package main

import (
	"log/slog"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

func main() {
	var cfg populate.Config
	front.Start(&cfg, func(nodes *nodeclient.Client, log *slog.Logger) (any, error) {
		orch, err := cfg.Orchestrator()
		if err != nil {
			return nil, err
		}
		var source populate.Source
		if orch != nil {
			source = orch // a nil *Client must not become a non-nil Source
		}
		return populate.New(nodes, source, log).Handle, nil
	})
}
