// Command submit is orchestrator's submit-masters-to-kv-stores as a Lambda
// function behind an HTTP API: it authenticates the request and forwards
// it to the node group. See internal/front/submit and docs/LAMBDA.md.
package main

import (
	"log/slog"

	"github.com/masterkv/masterkv/internal/front"
	"github.com/masterkv/masterkv/internal/front/submit"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

func main() {
	var cfg submit.Config
	front.Start(&cfg, func(nodes *nodeclient.Client, log *slog.Logger) (any, error) {
		return submit.New(nodes, cfg.Credentials.Verifier(nil), log).Handle, nil
	})
}
