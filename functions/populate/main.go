// Command populate is the scheduled populate Lambda function (EventBridge
// Scheduler or a classic scheduled rule): it posts the current masters to
// the node group's POST /v1/populate. See internal/front/populate and
// docs/LAMBDA.md.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/kelseyhightower/envconfig"

	"github.com/masterkv/masterkv/internal/front/populate"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

func main() {
	log := lambdacontext.NewLogger()
	var cfg populate.Config
	// Full names in the tags and no prefix: with a prefix envconfig would
	// also read the bare names.
	if err := envconfig.Process("", &cfg); err != nil {
		exit(log, err)
	}
	if err := cfg.Validate(); err != nil {
		exit(log, err)
	}
	nodes, err := nodeclient.New(cfg.Config, nodeclient.Options{Logger: log})
	if err != nil {
		exit(log, err)
	}
	orch, err := cfg.Orchestrator()
	if err != nil {
		exit(log, err)
	}
	var source populate.Source
	if orch != nil {
		source = orch // a nil *Client must not become a non-nil Source
	}
	lambda.Start(populate.New(nodes, source, log).Handle)
}

// exit fails the cold start; Lambda reports the init error.
func exit(log *slog.Logger, err error) {
	log.Error("configuration refused", "err", err)
	os.Exit(1)
}
