package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
	"github.com/slurmtune/slurmtune/slurm"
	"github.com/slurmtune/slurmtune/store/atomicfile"
	"github.com/slurmtune/slurmtune/templates"
)

// RecordModel checks that the run in runDir produced a complete final
// checkpoint (or that checkpoint names one), hashes it, and writes
// deploy.json in the run directory; it says so on out. With strategy
// record that is all the deploy stage does. It returns the checkpoint's
// sha256.
func RecordModel(runDir, strategy, checkpoint string, out io.Writer) (string, error) {
	l := templates.LayoutOf(runDir)
	p, err := jobs.Load(l.Pipeline, jobs.LoadOptions{})
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	final := checkpoint
	if final == "" {
		final = filepath.Join(l.Checkpoints, "final")
	}
	if _, err := os.Stat(filepath.Join(final, "COMPLETE")); err != nil {
		return "", fmt.Errorf("deploy: no complete final checkpoint in %s: %w", final, err)
	}
	sum, err := hashDir(final)
	if err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	host, _ := os.Hostname()
	rec := map[string]any{
		"run_id":      os.Getenv("SLURMTUNE_RUN_ID"),
		"job_id":      os.Getenv("SLURM_JOB_ID"),
		"model":       p.Model.Name,
		"checkpoint":  final,
		"sha256":      sum,
		"strategy":    strategy,
		"host":        host,
		"recorded_at": time.Now().UTC().Format(time.RFC3339),
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(runDir, "deploy.json")
	if err := atomicfile.Write(path, append(b, '\n'), p.Modes().File); err != nil {
		return "", fmt.Errorf("deploy: %w", err)
	}
	fmt.Fprintf(out, "recorded model %s (sha256 %s) in %s\n", p.Model.Name, sum, path)
	return sum, nil
}

// hashDir hashes the names and contents of the regular files under dir, in
// name order.
func hashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00", rel)
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// StageRun is one `slurmtune deploy run`: the deploy stage of the run in
// RunDir, on a node of the cluster.
type StageRun struct {
	RunDir string
	// Deps.Slurm submits, watches and cancels the serving jobs (Deps.Store
	// is not used).
	Deps Deps
	// Out gets the stage's progress lines.
	Out io.Writer
}

// Run is the deploy stage of a blue-green or canary deploy (see the
// package documentation for the flow); with strategy record it only
// records the model.
func (s StageRun) Run(ctx context.Context) error {
	runDir, err := filepath.Abs(s.RunDir)
	if err != nil {
		return err
	}
	l := templates.LayoutOf(runDir)
	p, err := jobs.Load(l.Pipeline, jobs.LoadOptions{})
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if p.Deploy.Strategy == "record" {
		_, err := RecordModel(runDir, "record", "", s.Out)
		return err
	}
	ckpt := p.Deploy.Checkpoint
	if ckpt == "" {
		ckpt = filepath.Join(l.Checkpoints, "final")
	}
	sum, err := RecordModel(runDir, p.Deploy.Strategy, ckpt, s.Out)
	if err != nil {
		return err
	}
	runID := os.Getenv("SLURMTUNE_RUN_ID")
	if runID == "" {
		runID = filepath.Base(runDir)
	}
	bin := os.Getenv("SLURMTUNE")
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	ts, err := templates.New()
	if err != nil {
		return err
	}
	sc, err := ts.RenderServe(p, templates.Run{ID: runID, Dir: runDir, Slurmtune: bin}, ckpt)
	if err != nil {
		return err
	}
	script := filepath.Join(runDir, "serve.sbatch")
	if err := atomicfile.Write(script, sc.Body, p.Modes().Script); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	// sbatch inside a job would pass this job's SLURM_* settings on to the
	// serving job: submit it as from a login shell.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(k, "SLURM_") || strings.HasPrefix(k, "SBATCH_")) && k != "SLURM_CONF" {
			_ = os.Unsetenv(k)
		}
	}
	d, err := Of(p, s.Deps)
	if err != nil {
		return err
	}
	cn := p.Deploy.Canary
	canary := CanaryConfig{Duration: cn.Duration.Duration, MinRequests: cn.MinRequests}
	if cn.ErrorRateMargin != nil {
		canary.ErrorRateMargin = *cn.ErrorRateMargin
	}
	if cn.LatencyMargin != nil {
		canary.LatencyMargin = *cn.LatencyMargin
	}
	data := l.Data + "/train.jsonl"
	if _, err := os.Stat(data); err != nil && p.Deploy.Checkpoint != "" {
		data = filepath.Join(filepath.Dir(filepath.Dir(ckpt)), "data", "train.jsonl")
	}
	if _, err := os.Stat(data); err != nil {
		data = ""
	}
	secrets := envSecrets(p)
	res, err := RunStage(ctx, StageConfig{
		Controller: d.Controller(), Strategy: p.Deploy.Strategy,
		Candidate: Member{Run: runID, Model: p.Model.Name, Version: sum[:12], RunDir: runDir, Data: data},
		SubmitServer: func(ctx context.Context) (string, error) {
			return s.Deps.Slurm.Submit(ctx, slurm.SubmitRequest{Script: sc.Body, ScriptPath: script, WorkDir: runDir,
				Comment: templates.Comment(runID, templates.ServeStage), ExtraArgs: []string{"--output=" + sc.Log}, Secrets: secrets})
		},
		JobEnded: func(ctx context.Context, id string) (bool, string, error) {
			jobs, err := s.Deps.Slurm.Jobs(ctx, []string{id})
			if err != nil || len(jobs) == 0 {
				return false, "", err
			}
			return jobs[0].State.Terminal(), string(jobs[0].State), nil
		},
		AddressFile:    addressFile(runDir),
		StartupTimeout: p.Deploy.Serve.StartupTimeout.Duration,
		Smoke:          smokeConfig(p), CanaryPercent: cn.Percent, Canary: canary,
		RollbackWindow: p.Deploy.RollbackWindow.Duration,
	})
	if res.Candidate.JobID != "" {
		fmt.Fprintf(s.Out, "serving job %s at %s: %s\n", res.Candidate.JobID, res.Candidate.URL, res.Smoke.Summary())
	}
	if err != nil {
		return fmt.Errorf("deploy %s of run %s FAILED: %w", p.Deploy.Strategy, runID, err)
	}
	fmt.Fprintf(s.Out, "deployed run %s (%s@%s) with %s: %s\n", runID, p.Model.Name, sum[:12], p.Deploy.Strategy, res.Outcome.Reason)
	return nil
}

// smokeConfig is deploy.smoke as Smoke takes it.
func smokeConfig(p *jobs.Pipeline) SmokeConfig {
	smoke := SmokeConfig{Model: p.Model.Name, Latency: p.Deploy.Smoke.Latency.Duration, MinSuccess: p.Deploy.Smoke.MinSuccess}
	for _, sp := range p.Deploy.Smoke.Prompts {
		x := SmokePrompt{Prompt: sp.Prompt, MaxTokens: sp.MaxTokens, Expect: sp.Expect}
		if sp.Regex != "" {
			x.Regex = regexp.MustCompile(sp.Regex) // validated when the pipeline was loaded
		}
		smoke.Prompts = append(smoke.Prompts, x)
	}
	return smoke
}

// envSecrets are the {env:} secrets of the pipeline: they came with this
// job's environment, under their own names, and the serving job gets them
// the same way.
func envSecrets(p *jobs.Pipeline) map[string]string {
	var secrets map[string]string
	for name, sec := range p.Environment.Secrets {
		if v, ok := os.LookupEnv(name); ok && sec.Env != "" {
			if secrets == nil {
				secrets = map[string]string{}
			}
			secrets[name] = v
		}
	}
	return secrets
}
