package main

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/serve/deploy"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/store"
)

// servingSlurm is how deployments reach Slurm: this host's commands (the
// login side, or the deploy stage's node).
func servingSlurm() deploy.Slurm {
	return local.NewClient() // TODO(merge): connect
}

func deployCommand() *cli.Command {
	stateFlag := &cli.StringFlag{Name: "state", Usage: "the router state `FILE` of the deployment (default: deploy.router.state of the newest serving run named NAME)"}
	runDir := &cli.StringFlag{Name: "run-dir", Required: true, Usage: "the run directory"}
	switchCmd := func(name, usage, reason string, promote bool) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, ArgsUsage: "NAME",
			Flags: []cli.Flag{stateFlag, jsonFlag("print the status as JSON"),
				&cli.StringFlag{Name: "reason", Value: reason, Usage: "why (recorded in the history)"}},
			Action: func(c *cli.Context) error {
				return withDeployment(c, "deploy "+name, func(ctx context.Context, e *env, st *store.Store, d *deploy.Deployment) error {
					s, err := d.Switch(ctx, st, promote, c.String("reason")+" ("+whoAmI()+")")
					if err != nil {
						return err
					}
					return printDeployStatus(e, s, c.Bool("json"))
				})
			},
		}
	}
	return &cli.Command{
		Name:  "deploy",
		Usage: "deploy stage commands, and the state of blue-green and canary deployments",
		Subcommands: []*cli.Command{
			{
				Name:  "record",
				Usage: "record the model a run would serve (the deploy stage runs this on the cluster)",
				Flags: []cli.Flag{runDir, &cli.StringFlag{Name: "strategy", Value: "record", Usage: "the deploy strategy named in the pipeline"}},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					_, err = deploy.RecordModel(c.String("run-dir"), c.String("strategy"), "", e.stdout)
					return err
				},
			},
			{
				Name:  "run",
				Usage: "run a blue-green or canary deploy of a run's model (the deploy stage runs this on the cluster)",
				Flags: []cli.Flag{runDir},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					return deploy.StageRun{RunDir: c.String("run-dir"), Slurm: servingSlurm(), Log: e.log, Out: e.stdout}.Run(contextOf(c))
				},
			},
			{
				Name:      "serve",
				Usage:     "run a model server for the router (the serving job runs this)",
				ArgsUsage: "-- COMMAND [ARG]...",
				Flags: []cli.Flag{runDir,
					&cli.StringFlag{Name: "model", Required: true, Usage: "the checkpoint directory ({model})"},
					&cli.StringFlag{Name: "name", Usage: "the served model name ({name})"},
					&cli.IntFlag{Name: "port", Usage: "port to serve on ({port}); 0 picks a free one"},
					&cli.DurationFlag{Name: "startup-timeout", Value: 10 * time.Minute, Usage: "how long the server may take to answer /health"},
				},
				Action: func(c *cli.Context) error {
					e, err := newEnv(c)
					if err != nil {
						return err
					}
					if c.NArg() == 0 {
						return usagef("deploy serve: no server command (give it after --)")
					}
					dir := c.String("run-dir")
					return deploy.RunServer(contextOf(c), deploy.ServerOptions{
						Command: c.Args().Slice(), Model: c.String("model"), Name: c.String("name"), Port: c.Int("port"),
						AddressFile: filepath.Join(dir, "serve", "address"), PromptLog: filepath.Join(dir, "serve", "prompts.jsonl"),
						StartupTimeout: c.Duration("startup-timeout"), Stdout: e.stdout, Stderr: e.stderr, Log: e.log,
					})
				},
			},
			{
				Name:      "status",
				Usage:     "show a deployment: the stable model, the candidate, and every switch",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{stateFlag, jsonFlag("print JSON")},
				Action: func(c *cli.Context) error {
					return withDeployment(c, "deploy status", func(ctx context.Context, e *env, st *store.Store, d *deploy.Deployment) error {
						s, err := d.Status(ctx, st)
						if err != nil {
							return err
						}
						return printDeployStatus(e, s, c.Bool("json"))
					})
				},
			},
			switchCmd("promote", "give a deployment's candidate all the traffic now", "promoted by hand", true),
			switchCmd("rollback", "take a deployment's candidate out of service, or go back to the previous model within its rollback window",
				"rolled back by hand", false),
		},
	}
}

// withDeployment runs fn on the deployment NAME (the command's one
// argument, found by name or --state) with the store open.
func withDeployment(c *cli.Context, cmd string, fn func(ctx context.Context, e *env, st *store.Store, d *deploy.Deployment) error) error {
	e, err := newEnv(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		what := "deployment NAME"
		if cmd != "drift" {
			what += " (the pipeline's name)"
		}
		return usagef("%s: want exactly one %s, got %d arguments", cmd, what, c.NArg())
	}
	ctx := contextOf(c)
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	d, err := deploy.Find(ctx, st, servingSlurm(), e.log, c.Args().First(), c.String("state"))
	if err != nil {
		return err
	}
	return fn(ctx, e, st, d)
}

func printDeployStatus(e *env, s *deploy.Status, asJSON bool) error {
	if asJSON {
		return printJSON(e.stdout, s)
	}
	s.WriteText(e.stdout)
	return nil
}

// whoAmI is user@host, for the reason of a switch by hand.
func whoAmI() string {
	who := os.Getenv("USER")
	if u, err := user.Current(); who == "" && err == nil {
		who = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		who += "@" + h
	}
	return who
}
