package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/store"
)

type statusOptions struct {
	run    string
	json   bool
	noSync bool
	limit  int
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show runs and their stages (refreshed from Slurm first)",
		ArgsUsage: "[RUN]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-sync", Usage: "show what the database knows without asking Slurm"},
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "show at most N runs (0: all)"},
		},
		Action: func(c *cli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			if c.NArg() > 1 {
				return usagef("status: at most one RUN")
			}
			return status(c.Context, e, statusOptions{run: c.Args().First(), json: c.Bool("json"), noSync: c.Bool("no-sync"), limit: c.Int("limit")})
		},
	}
}

func status(ctx context.Context, e *env, o statusOptions) error {
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if !o.noSync {
		syncQuietly(ctx, e, st)
	}
	var runs []*store.Run
	if o.run != "" {
		r, err := st.GetRun(ctx, o.run)
		if err != nil {
			return err
		}
		runs = []*store.Run{r}
	} else if runs, err = st.ListRuns(ctx, o.limit); err != nil {
		return err
	}
	if o.json {
		return writeStatusJSON(e.stdout, runs)
	}
	return writeStatusTable(e.stdout, runs)
}

// syncQuietly refreshes from Slurm; when the cluster cannot be asked, status
// still shows what the database knows, with a warning.
func syncQuietly(ctx context.Context, e *env, st *store.Store) {
	cs := newClusterSet(e, st)
	defer cs.close()
	if _, err := cs.refresh(ctx); err != nil {
		e.log.Warn("could not refresh from Slurm; showing the last known state", "err", err)
	}
}

type stageJSON struct {
	Name     string `json:"name"`
	JobID    string `json:"job_id"`
	State    string `json:"state"`
	ExitCode *int   `json:"exit_code"`
	Restarts int    `json:"restarts"`
	Nodes    string `json:"nodes"`
	Reason   string `json:"reason"`
	Attempt  int    `json:"attempt"`
	Elapsed  int64  `json:"elapsed_seconds"`
}

type runJSON struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	State     string      `json:"state"`
	Transport string      `json:"transport"`
	Cluster   string      `json:"cluster"`
	RunDir    string      `json:"run_dir"`
	Created   time.Time   `json:"created_at"`
	Stages    []stageJSON `json:"stages"`
}

func writeStatusJSON(w io.Writer, runs []*store.Run) error {
	out := struct {
		Runs []runJSON `json:"runs"`
	}{Runs: []runJSON{}}
	for _, r := range runs {
		rj := runJSON{ID: r.ID, Name: r.Name, State: r.State, Transport: r.Transport, Cluster: r.Cluster, RunDir: r.RunDir,
			Created: r.CreatedAt.UTC(), Stages: []stageJSON{}}
		for _, s := range r.Stages {
			rj.Stages = append(rj.Stages, stageJSON{Name: s.Name, JobID: s.JobID, State: s.State, ExitCode: s.ExitCode,
				Restarts: s.Restarts, Nodes: s.Nodes, Reason: s.Reason, Attempt: s.Attempt, Elapsed: int64(s.Elapsed / time.Second)})
		}
		out.Runs = append(out.Runs, rj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeStatusTable(w io.Writer, runs []*store.Run) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tNAME\tSTATE\tSTAGE\tJOB\tSLURM STATE\tEXIT\tRESTARTS\tELAPSED\tNODES\tREASON")
	for _, r := range runs {
		for i, s := range r.Stages {
			id, name, state := r.ID, r.Name, r.State
			if i > 0 {
				id, name, state = "", "", ""
			}
			exit := "-"
			if s.ExitCode != nil {
				exit = strconv.Itoa(*s.ExitCode)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", id, oneLine(name), state, s.Name, dash(s.JobID), s.State, exit,
				s.Restarts, s.Elapsed, dash(s.Nodes), dash(s.Reason))
		}
		if len(r.Stages) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\n", r.ID, oneLine(r.Name), r.State)
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a user-chosen name from breaking the table.
func oneLine(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}
