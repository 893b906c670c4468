package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/store"
)

func sweepCommand() *cli.Command {
	return &cli.Command{
		Name:  "sweep",
		Usage: "a sweep run's own steps (the select job runs `sweep select`)",
		Subcommands: []*cli.Command{{
			Name:  "select",
			Usage: "pick the best task that passed every gate and point the run's checkpoints and eval at it; exit 1 with the reason when none passed",
			Flags: []cli.Flag{&cli.StringFlag{Name: "run-dir", Required: true, Usage: "the sweep run's directory"}},
			Action: func(c *cli.Context) error {
				e, err := newEnv(c)
				if err != nil {
					return err
				}
				sel, err := sweep.SelectRun(c.Context, c.String("run-dir"))
				if sel != nil {
					for _, t := range sel.Tasks {
						fmt.Fprintf(e.stdout, "slurmtune: task %d: %s\n", t.Task, t.Line(sel.Metric))
					}
				}
				if err != nil {
					return exitError{code: exitFailure, msg: "slurmtune: FAILED: " + err.Error()}
				}
				fmt.Fprintf(e.stdout, "slurmtune: winner: task %d\n", *sel.Winner)
				return nil
			},
		}},
	}
}

// sweepTasks resolves the sweep of the pipeline file the command names
// (nil when p is not a sweep), checked against the cluster's MaxArraySize
// (see sweep.Tasks).
func sweepTasks(c *cli.Context, p *jobs.Pipeline, cluster sweep.ArraySizer) ([]sweep.Task, error) {
	return sweep.Tasks(c.Context, p, c.Args().First(), jobs.LoadOptions{Sets: c.StringSlice("set")}, cluster)
}

// writeSweepTables prints, after the runs, each sweep's table (in task
// order, or best first with byRank).
func writeSweepTables(w io.Writer, runs []*store.Run, views map[string]*sweep.View, byRank bool) error {
	for _, r := range runs {
		v := views[r.ID]
		if v == nil {
			continue
		}
		fmt.Fprintf(w, "\nsweep %s (select %s %s):\n", r.ID, v.Goal, v.Metric)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RANK\tTASK\tSETTINGS\tTRAIN\tEVAL\tLOSS\t"+strings.ToUpper(v.Metric)+"\tGATES\tWINNER\tWHY")
		tasks := append([]sweep.TaskView{}, v.Tasks...)
		if byRank {
			sort.Slice(tasks, func(i, j int) bool { return tasks[i].Rank < tasks[j].Rank })
		}
		for _, t := range tasks {
			var set []string
			for _, k := range v.Varying {
				set = append(set, fmt.Sprintf("%s=%v", k, t.Settings[k]))
			}
			metric, loss := "-", "-"
			if t.Metric != nil {
				metric = fmtMetric(*t.Metric)
			}
			if t.TrainLoss != nil {
				loss = fmtMetric(*t.TrainLoss)
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Rank, t.Task, dash(strings.Join(set, " ")), t.Train, t.Eval, loss, metric,
				dash(t.Verdict), map[bool]string{true: "*", false: ""}[t.Winner], dash(oneLine(t.Why)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
