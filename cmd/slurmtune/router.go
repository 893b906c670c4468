package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/serve"
	"github.com/slurmtune/slurmtune/serve/deploy"
)

// routerCommand returns `slurmtune router`, which runs the serving router in
// front of the model-server jobs of a deployment.
func routerCommand() *cli.Command {
	return &cli.Command{
		Name:  "router",
		Usage: "route OpenAI-compatible requests across model-server backends",
		Description: "Proxies requests to the backends named in the routing state file (weighted, health-checked,\n" +
			"streaming-safe) and reloads the file when it changes. Metrics are served at /metrics.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "address to serve on, e.g. :8080", Required: true},
			&cli.StringFlag{Name: "state", Usage: "routing state `FILE` (JSON) to load and watch"},
			&cli.StringFlag{Name: "admin-token-file", Usage: "`FILE` holding the bearer token for /admin/ (mode 600, at least 32 bytes; admin API disabled without it)"},
			&cli.DurationFlag{Name: "health-interval", Usage: "interval between backend health checks", Value: 2 * time.Second},
			&cli.StringFlag{Name: "access-log", Usage: "access log `FILE` (JSON lines); - for stdout, empty to disable", Value: "-"},
			&cli.StringFlag{Name: "prompt-log", Usage: "`FILE` the prompts of answered completion requests are appended to, for `slurmtune drift` (default: next to --state, STATE.prompts.jsonl)"},
			&cli.IntFlag{Name: "max-conns", Usage: "client connections held at once; more are closed at once", Value: serve.DefaultMaxConns},
			&cli.Int64Flag{Name: "memory-limit", Usage: "soft memory limit in `MiB` (request bodies buffered together get a quarter of it; default 1024, or $GOMEMLIMIT)"},
			&cli.DurationFlag{Name: "backend-timeout", Usage: "wait at most this long for a backend's response headers; a backend that times out leaves rotation for 30s", Value: serve.DefaultBackendTimeout},
			&cli.DurationFlag{Name: "body-grace", Usage: "time a client has before its request body must arrive at --body-min-rate", Value: serve.DefaultBodyGrace},
			&cli.Int64Flag{Name: "body-min-rate", Usage: "slowest accepted request body, in `BYTES` per second after --body-grace", Value: serve.DefaultBodyMinRate},
			&cli.BoolFlag{Name: "no-prompt-log", Usage: "do not log prompts (data drift is then checked only against prompts the model servers log themselves)"},
		},
		Action: func(c *cli.Context) error {
			var level slog.Level
			if l := c.String("log-level"); l != "" { // global flag, when the app defines it
				if err := level.UnmarshalText([]byte(l)); err != nil {
					return fmt.Errorf("--log-level: %w", err)
				}
			}
			access, closeAccess, err := serve.OpenAccessLog(c.String("access-log"), c.App.Writer)
			if err != nil {
				return err
			}
			defer closeAccess()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return deploy.RunRouter(ctx, serve.Options{
				Listen: c.String("listen"), StatePath: c.String("state"), AdminTokenFile: c.String("admin-token-file"),
				HealthInterval: c.Duration("health-interval"), AccessLog: access, PromptLog: c.String("prompt-log"),
				Logger:   slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})),
				MaxConns: c.Int("max-conns"), MemoryLimit: c.Int64("memory-limit") << 20, BackendTimeout: c.Duration("backend-timeout"),
				BodyGrace: c.Duration("body-grace"), BodyMinRate: c.Int64("body-min-rate"),
			}, c.Bool("no-prompt-log"))
		},
	}
}

// envAction is an action that starts from the command's env.
func envAction(fn func(c *cli.Context, e *env) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		e, err := newEnv(c)
		if err != nil {
			return err
		}
		return fn(c, e)
	}
}
