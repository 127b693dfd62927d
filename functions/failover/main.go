// Command failover is the failover webhook Lambda function (Function URL
// and HTTP API): it authenticates the request and forwards it to the node
// group's POST /v1/failover. See internal/front/failover and
// docs/LAMBDA.md.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/kelseyhightower/envconfig"

	"github.com/masterkv/masterkv/internal/front/failover"
	"github.com/masterkv/masterkv/internal/nodeclient"
)

func main() {
	log := lambdacontext.NewLogger()
	var cfg failover.Config
	// Full names in the tags and no prefix: with a prefix envconfig would
	// also read the bare names (NODES, WEBHOOK_TOKENS ...).
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
	lambda.Start(failover.New(nodes, cfg.Credentials.Verifier(nil), log).Handle)
}

// exit fails the cold start; Lambda reports the init error.
func exit(log *slog.Logger, err error) {
	log.Error("configuration refused", "err", err)
	os.Exit(1)
}
