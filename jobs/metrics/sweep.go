package metrics

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/slurmtune/slurmtune/jobs/sweep"
	"github.com/slurmtune/slurmtune/nvml"
	"github.com/slurmtune/slurmtune/store"
)

// WriteSweepTables prints, after the runs, each sweep's table (in task
// order, or best first with byRank).
func WriteSweepTables(w io.Writer, runs []*store.Run, views map[string]*sweep.View, byRank bool) error {
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
				metric = Fmt(*t.Metric)
			}
			if t.TrainLoss != nil {
				loss = Fmt(*t.TrainLoss)
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Rank, t.Task, nvml.Dash(strings.Join(set, " ")), t.Train, t.Eval, loss, metric,
				nvml.Dash(t.Verdict), map[bool]string{true: "*", false: ""}[t.Winner], nvml.Dash(nvml.OneLine(t.Why)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
