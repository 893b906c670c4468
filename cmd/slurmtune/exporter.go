package main

import (
	"log/slog"
	"os"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/urfave/cli/v2"

	"github.com/slurmtune/slurmtune/nvml"
)

// exporterCommand is `slurmtune exporter`: GPU telemetry from NVML served
// to Prometheus at GET /metrics and/or appended to a JSON-lines samples file
// for `slurmtune report`. It runs until the context is cancelled
// (SIGINT/SIGTERM), then flushes the samples and exits 0. On a node without
// an NVIDIA driver it logs one line and keeps serving slurmtune_nvml_up 0.
func exporterCommand() *cli.Command {
	return &cli.Command{
		Name:  "exporter",
		Usage: "export GPU telemetry (NVML) to Prometheus and/or a samples file",
		Description: "Collects per-GPU utilization, memory, power, energy, temperature, SM clock,\n" +
			"clock event reasons, ECC and XID errors and compute processes every --interval,\n" +
			"attributing GPUs to Slurm jobs. Serves GET /metrics on --listen (loopback by\n" +
			"default; use --listen :9477 for a remote Prometheus, --listen \"\" to disable\n" +
			"HTTP) and appends one JSON line per GPU per collection to --samples.",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:  "listen",
				Value: nvml.DefaultListen,
				Usage: `address serving GET /metrics; "" disables HTTP`,
			},
			&cli.DurationFlag{
				Name:  "interval",
				Value: nvml.DefaultInterval,
				Usage: "time between NVML collections (scrapes read the latest one)",
			},
			&cli.StringFlag{
				Name:      "samples",
				Usage:     "append JSON-lines samples to `FILE`",
				TakesFile: true,
			},
		},
		Action: func(c *cli.Context) error {
			opts := nvml.ExporterOptions{
				Listen:      c.String("listen"),
				Interval:    c.Duration("interval"),
				SamplesPath: c.String("samples"),
				JobID:       os.Getenv("SLURM_JOB_ID"),
				Logger:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
			}
			return nvml.RunExporter(c.Context, opts, gonvml.New())
		},
	}
}
