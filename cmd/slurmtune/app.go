package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/cmd/slurmtune/internal/clix"
	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/chain"
	"github.com/slurmtune/slurmtune/store"
	"github.com/slurmtune/slurmtune/templates"
)

// version, commit and date are set at build time with -ldflags
// "-X main.version=... -X main.commit=... -X main.date=..." (make build,
// make release).
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                      "slurmtune",
		Usage:                     "fine-tune LLMs on Slurm: one pipeline file to a tracked chain of jobs",
		Version:                   clix.VersionLine(version, commit, date),
		Writer:                    stdout,
		ErrWriter:                 stderr,
		DisableSliceFlagSeparator: true,
		EnableBashCompletion:      true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "db", Usage: "SQLite database `PATH` (default $XDG_STATE_HOME/slurmtune/slurmtune.db)", EnvVars: []string{"SLURMTUNE_DB"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)", EnvVars: []string{"SLURMTUNE_LOG_LEVEL"}},
		},
		OnUsageError:   func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		ExitErrHandler: func(*cli.Context, error) {}, // errors become exit codes in run(), not here
		// In the order `slurmtune --help` lists them.
		Commands: []*cli.Command{validateCommand(), renderCommand(), submitCommand(), statusCommand(), logsCommand(),
			cancelCommand(), syncCommand(), deployCommand(), prepCommand(), gateCommand(), routerCommand(),
			exporterCommand(), gpuCommand(), sbatchCommand(), retryCommand(), dbCommand(), reviewCommand(),
			clusterCommand(), driftCommand(), completionCommand(), metricsCommand(), compareCommand(), uiCommand(), sweepCommand(),
		},
	}
	usageErrors(app.Commands)
	return app
}

// usageErrors makes a bad flag of any command a usage error (exit 2, one
// line), as it is for the global flags.
func usageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
		}
		usageErrors(c.Subcommands)
	}
}

// env is what every command gets from the global flags.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	dbPath         string
}

func newEnv(c *cli.Context) (*env, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	// The database path is worked out only by commands that open it: the
	// ones the stages run on compute nodes (prep, gate...) may have no HOME.
	return &env{stdout: c.App.Writer, stderr: c.App.ErrWriter, log: log, dbPath: c.String("db")}, nil
}

func (e *env) openStore(ctx context.Context) (*store.Store, error) {
	if e.dbPath == "" {
		p, err := store.DefaultPath()
		if err != nil {
			return nil, err
		}
		e.dbPath = p
	}
	return store.Open(ctx, e.dbPath, e.log)
}

// setFlag is the repeatable --set key.path=value flag of every command that
// takes a pipeline file.
func setFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "set", Usage: "override a pipeline field: `key.path=value` (repeatable)"}
}

// loadPipeline loads the pipeline file named by the command's one argument.
func loadPipeline(c *cli.Context) (*jobs.Pipeline, error) {
	if c.NArg() != 1 {
		return nil, usagef("%s: want exactly one pipeline FILE, got %d arguments", c.Command.Name, c.NArg())
	}
	return jobs.Load(c.Args().First(), jobs.LoadOptions{Sets: c.StringSlice("set")})
}

// service builds the chain service for a connected cluster.
func (e *env) service(st *store.Store, cl *cluster) (*chain.Service, error) {
	ts, err := templates.New()
	if err != nil {
		return nil, err
	}
	return &chain.Service{Client: cl.client, Inspector: cl.Inspector, FS: cl.fs, Store: st, Templates: ts, Log: e.log,
		Transport: cl.Transport, Cluster: cl.Name, ClusterConfig: cl.Config, Slurmtune: cl.slurmtune}, nil
}
