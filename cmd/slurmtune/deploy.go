package main

import (
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/serve/deploy"
	"github.com/slurmtune/slurmtune/slurm/local"
	"github.com/slurmtune/slurmtune/store"
)

// deployDeps are st (nil in the deploy stage) and Slurm through this
// host's commands: the login side's, or the deploy stage's node's.
func deployDeps(e *env, st deploy.Store) deploy.Deps {
	return deploy.Deps{Store: st, Slurm: local.NewClient(), Log: e.log} // TODO(merge): connect
}

// stateFlag is --state of the commands that find a deployment by NAME.
func stateFlag() cli.Flag {
	return &cli.StringFlag{Name: "state", Usage: "the router state `FILE` of the deployment (default: deploy.router.state of the newest serving run named NAME)"}
}

func deployCommand() *cli.Command {
	runDir := &cli.StringFlag{Name: "run-dir", Required: true, Usage: "the run directory"}
	switchCmd := func(name, usage, reason string, promote bool) *cli.Command {
		return &cli.Command{Name: name, Usage: usage, ArgsUsage: "NAME",
			Flags: []cli.Flag{stateFlag(), jsonFlag("print the status as JSON"),
				&cli.StringFlag{Name: "reason", Value: reason, Usage: "why (recorded in the history)"}},
			Action: deploymentAction("deploy "+name+": want exactly one deployment NAME (the pipeline's name)", func(c *cli.Context, e *env, st *store.Store, d *deploy.Deployment) error {
				s, err := d.Switch(c.Context, promote, c.String("reason"))
				return printResult(e, c.Bool("json"), s, err)
			}),
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
				Action: envAction(func(c *cli.Context, e *env) error {
					_, err := deploy.RecordModel(c.String("run-dir"), c.String("strategy"), "", e.stdout)
					return err
				}),
			},
			{
				Name:  "run",
				Usage: "run a blue-green or canary deploy of a run's model (the deploy stage runs this on the cluster)",
				Flags: []cli.Flag{runDir},
				Action: envAction(func(c *cli.Context, e *env) error {
					return deploy.StageRun{RunDir: c.String("run-dir"), Deps: deployDeps(e, nil), Out: e.stdout}.Run(c.Context)
				}),
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
				Action: envAction(func(c *cli.Context, e *env) error {
					if c.NArg() == 0 {
						return usagef("deploy serve: no server command (give it after --)")
					}
					return deploy.RunServer(c.Context, deploy.ServerOptions{RunDir: c.String("run-dir"),
						Command: c.Args().Slice(), Model: c.String("model"), Name: c.String("name"), Port: c.Int("port"),
						StartupTimeout: c.Duration("startup-timeout"), Stdout: e.stdout, Stderr: e.stderr, Log: e.log,
					})
				}),
			},
			{
				Name:      "status",
				Usage:     "show a deployment: the stable model, the candidate, and every switch",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{stateFlag(), jsonFlag("print JSON")},
				Action: deploymentAction("deploy status: want exactly one deployment NAME (the pipeline's name)", func(c *cli.Context, e *env, st *store.Store, d *deploy.Deployment) error {
					s, err := d.Status(c.Context)
					return printResult(e, c.Bool("json"), s, err)
				}),
			},
			switchCmd("promote", "give a deployment's candidate all the traffic now", "promoted by hand", true),
			switchCmd("rollback", "take a deployment's candidate out of service, or go back to the previous model within its rollback window",
				"rolled back by hand", false),
		},
	}
}

// deploymentAction runs fn on the deployment NAME (the command's one
// argument, found by name or --state) with the store open; usage is what
// is wrong without exactly one argument.
func deploymentAction(usage string, fn func(c *cli.Context, e *env, st *store.Store, d *deploy.Deployment) error) cli.ActionFunc {
	return envAction(func(c *cli.Context, e *env) error {
		if c.NArg() != 1 {
			return usagef("%s, got %d arguments", usage, c.NArg())
		}
		st, err := e.openStore(c.Context)
		if err != nil {
			return err
		}
		defer st.Close()
		d, err := deploy.Find(c.Context, deployDeps(e, st), c.Args().First(), c.String("state"))
		if err != nil {
			return err
		}
		return fn(c, e, st, d)
	})
}

// textResult is a result that writes itself as text.
type textResult interface{ WriteText(w io.Writer) }

// printResult prints r (unless err) as JSON with --json, else as text.
func printResult(e *env, asJSON bool, r textResult, err error) error {
	switch {
	case err != nil:
		return err
	case asJSON:
		return printJSON(e.stdout, r)
	}
	r.WriteText(e.stdout)
	return nil
}
