package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

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

// versionLine is what --version prints after "slurmtune version ". A
// binary built without the ldflags (`go install ...@v1.2.3`) reports what
// Go recorded in it: the module version, and the VCS revision and time.
func versionLine() string {
	v, c, d := version, commit, date
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "unknown":
				c = s.Value
			case s.Key == "vcs.time" && d == "unknown":
				d = s.Value
			}
		}
	}
	return fmt.Sprintf("%s (commit %s, built %s, %s/%s, %s)", v, c, d, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                      "slurmtune",
		Usage:                     "fine-tune LLMs on Slurm: one pipeline file to a tracked chain of jobs",
		Version:                   versionLine(),
		Writer:                    stdout,
		ErrWriter:                 stderr,
		DisableSliceFlagSeparator: true,
		EnableBashCompletion:      true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "db", Usage: "SQLite database `PATH` (default $XDG_STATE_HOME/slurmtune/slurmtune.db)", EnvVars: []string{"SLURMTUNE_DB"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)", EnvVars: []string{"SLURMTUNE_LOG_LEVEL"}},
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		ExitErrHandler: func(*cli.Context, error) {
			// Errors become exit codes in run(), not here.
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "slurmtune: no command %q (see slurmtune --help)\n", name)
			os.Exit(exitInvalid)
		},
		Commands: []*cli.Command{
			validateCommand(),
			renderCommand(),
			submitCommand(),
			statusCommand(),
			logsCommand(),
			cancelCommand(),
			syncCommand(),
			deployCommand(),
			prepCommand(),
			gateCommand(),
			routerCommand(),
			exporterCommand(),
			gpuCommand(),
			sbatchCommand(),
			retryCommand(),
			dbCommand(),
			reviewCommand(),
			clusterCommand(),
			driftCommand(),
			completionCommand(),
			metricsCommand(),
			compareCommand(),
			uiCommand(),
			sweepCommand(),
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
	return &chain.Service{Client: cl.client, FS: cl.fs, Store: st, Templates: ts, Log: e.log,
		Transport: cl.transport, Cluster: cl.name, ClusterConfig: cl.config, Slurmtune: cl.slurmtune}, nil
}
