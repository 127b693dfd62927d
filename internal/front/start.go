package front

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/kelseyhightower/envconfig"

	"github.com/masterkv/masterkv/internal/nodeclient"
)

// Config is what every function's configuration gives Start.
type Config interface {
	Validate() error
	// NodeClient is the node group the function forwards to.
	NodeClient() nodeclient.Config
}

// NodeClient is the node group the function forwards to.
func (c ForwardConfig) NodeClient() nodeclient.Config { return c.Config }

// Start is a function's main: it reads cfg (a pointer to the function's
// configuration) from the environment, validates it, connects the node
// client and hands lambda.Start the handler build returns. Any error fails
// the cold start: it is logged, and Lambda reports the init error.
//
// The tags carry full variable names and no prefix is given: with a prefix
// envconfig would also read the bare names (NODES, WEBHOOK_TOKENS ...).
func Start(cfg Config, build func(nodes *nodeclient.Client, log *slog.Logger) (handler any, err error)) {
	log := lambdacontext.NewLogger()
	handler, err := start(cfg, build, log)
	if err != nil {
		log.Error("configuration refused", "err", err)
		os.Exit(1)
	}
	lambda.Start(handler)
}

func start(cfg Config, build func(*nodeclient.Client, *slog.Logger) (any, error), log *slog.Logger) (any, error) {
	if err := envconfig.Process("", cfg); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	nodes, err := nodeclient.New(cfg.NodeClient(), nodeclient.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	return build(nodes, log)
}
