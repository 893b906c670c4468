package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/ui"
)

type uiOptions struct {
	listen, tokenFile string
	interval          time.Duration
	noSync            bool
}

func uiCommand() *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "serve a read-only web dashboard of the runs: curves, eval gates, GPUs, stage timeline, deploys",
		Description: "Serves the database read-only (it never writes to it) and asks Slurm, read-only,\n" +
			"for the live jobs' states every --interval. Listens on loopback unless told\n" +
			"otherwise; any other address needs --token-file, and every request must then\n" +
			"carry the token (Authorization: Bearer TOKEN, or ?token=TOKEN once in a browser).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", Usage: "`ADDR` to listen on"},
			&cli.StringFlag{Name: "token-file", Usage: "`FILE` holding the token every request must carry (required off loopback)"},
			&cli.DurationFlag{Name: "interval", Value: 15 * time.Second, Usage: "how often to ask Slurm for the live jobs' states"},
			&cli.BoolFlag{Name: "no-sync", Usage: "never ask Slurm: show the states the database has"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() != 0 {
				return usagef("ui: takes no arguments")
			}
			return serveUI(c.Context, e, uiOptions{listen: c.String("listen"), tokenFile: c.String("token-file"),
				interval: c.Duration("interval"), noSync: c.Bool("no-sync")})
		},
	}
}

func serveUI(ctx context.Context, e *env, o uiOptions) error {
	token, err := ui.ReadTokenFile(o.tokenFile)
	if err != nil {
		return usageError{fmt.Errorf("ui: %w", err)}
	}
	if err := ui.CheckListen(o.listen, token != ""); err != nil {
		return usageError{fmt.Errorf("ui: %w", err)}
	}
	if e.dbPath == "" {
		if e.dbPath, err = store.DefaultPath(); err != nil {
			return err
		}
	}
	st, err := store.OpenReadOnly(ctx, e.dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	opts := ui.Options{Store: st, Token: token, Interval: o.interval, Log: e.log}
	if !o.noSync {
		cs := newClusterSet(e, st)
		defer cs.close()
		opts.Live = func(ctx context.Context) (map[string]slurm.Job, error) {
			return ui.LiveStates(ctx, st, func(ctx context.Context, config string, ids []string) ([]slurm.Job, error) {
				cl, err := cs.get(ctx, config)
				if err != nil {
					return nil, err
				}
				return cl.client.Jobs(ctx, ids)
			})
		}
	}
	srv, err := ui.New(opts)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	fmt.Fprintf(e.stdout, "slurmtune ui: serving %s on http://%s/\n", e.dbPath, l.Addr())
	return srv.Serve(ctx, l)
}
