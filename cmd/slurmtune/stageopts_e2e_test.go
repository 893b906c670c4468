package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/slurmtest"
)

// TestE2EStageOptions: per-stage Slurm options (typed GPUs, constraint,
// reservation, exclusive, mail, sbatch_args) render shellcheck-clean
// scripts that Slurm accepts (validate --cluster runs sbatch --test-only on
// each) on the dev cluster, which has node features, a reservation and
// typed fake GPUs; an option slurmtune owns, an unknown option, and a GPU
// type, feature or reservation the cluster lacks are refused at their
// FILE:LINE:COL.
func TestE2EStageOptions(t *testing.T) {
	slurmtest.RequireCluster(t)
	t.Parallel()
	tmp := t.TempDir()
	db := filepath.Join(tmp, "st.db")
	sets := []string{"--set", "train.gpus_per_node=a100:2", "--set", "train.tasks_per_node=2", "--set", "train.constraint=ib",
		"--set", "prep.reservation=st-dev", "--set", "eval.exclusive=true", "--set", "train.mail.type=END,FAIL",
		"--set", "train.mail.user=root", "--set", `train.sbatch_args=["--mincpus=1", "--spread-job"]`,
		"--set", "deploy.constraint=bigmem", "--set", "eval.partition=short", "--set", "deploy.qos=normal"}
	if r := slurmtune(t, db, append([]string{"validate", tinyPipeline(t), "--cluster"}, sets...)...); r.code != 0 {
		t.Fatalf("validate --cluster with stage options: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	out := filepath.Join(tmp, "out")
	if r := slurmtune(t, db, append([]string{"render", tinyPipeline(t), "-o", out}, sets...)...); r.code != 0 {
		t.Fatalf("render: exit %d: %s", r.code, r.stderr)
	}
	train, _ := os.ReadFile(filepath.Join(out, "train.sbatch"))
	for _, want := range []string{"#SBATCH --gres=gpu:a100:2", "#SBATCH --constraint=ib",
		"#SBATCH --mail-type=END,FAIL", "#SBATCH --mincpus=1", "#SBATCH --spread-job"} {
		if !strings.Contains(string(train), want+"\n") {
			t.Errorf("train.sbatch lacks %q", want)
		}
	}
	prep, _ := os.ReadFile(filepath.Join(out, "prep.sbatch"))
	eval, _ := os.ReadFile(filepath.Join(out, "eval.sbatch"))
	if !strings.Contains(string(prep), "#SBATCH --reservation=st-dev\n") ||
		!strings.Contains(string(eval), "#SBATCH --exclusive\n") || !strings.Contains(string(eval), "#SBATCH --partition=short\n") {
		t.Errorf("prep or eval script lacks its options:\n%s\n%s", prep, eval)
	}
	scripts, _ := filepath.Glob(filepath.Join(out, "*.sbatch"))
	if sc, err := exec.Command("shellcheck", append([]string{"-S", "warning"}, scripts...)...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, sc)
	}

	// Over REST, mail is sent; an option the REST transport cannot send is
	// refused before anything is queued, by validate --cluster and submit.
	rest := restSets(needREST(t))
	quick := []string{"--set", "name=opts-rest", "--set", "workdir=" + filepath.Join(tmp, "runs"), "--set", "train.mail.type=END", "--set", "train.mail.user=root"}
	if r := slurmtune(t, db, append(append([]string{"validate", quickPipeline(t), "--cluster"}, quick...), rest...)...); r.code != 0 {
		t.Errorf("validate --cluster over rest with mail: exit %d: %s", r.code, r.stderr)
	}
	unsendable := append(append([]string{}, quick...), "--set", `train.sbatch_args=["--spread-job"]`)
	for _, cmd := range []string{"validate", "submit"} {
		args := []string{cmd, quickPipeline(t)}
		if cmd == "validate" {
			args = append(args, "--cluster")
		}
		r := slurmtune(t, db, append(append(args, unsendable...), rest...)...)
		if r.code == 0 || !strings.Contains(r.stderr, `train stage: submit: #SBATCH line "--spread-job": option not supported by the REST transport`) || !strings.Contains(r.stderr, "not supported by the REST transport") {
			t.Errorf("%s over rest with --spread-job: exit %d: %s", cmd, r.code, r.stderr)
		}
	}
	if tags := slurmJobsTagged(t, "opts-rest"); len(tags) != 0 {
		t.Errorf("jobs were queued: %v", tags)
	}

	file := filepath.Join(tmp, "p.yaml")
	if err := os.WriteFile(file, []byte(`name: opts
workdir: `+filepath.Join(tmp, "runs")+`
data: {inputs: [`+repoRoot(t)+`/examples/tiny/data/*.jsonl]}
train:
  python: /bin/sh
  script: `+repoRoot(t)+`/cmd/slurmtune/testdata/quick_train.sh
  sbatch_args: [--dependency=afterok:1]
eval:
  python: /bin/sh
  script: `+repoRoot(t)+`/cmd/slurmtune/testdata/quick_eval.sh
  sbatch_args: [--no-such-option]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := slurmtune(t, db, "validate", file)
	want := file + ":7:17: train.sbatch_args[0]: --dependency is not for sbatch_args: slurmtune chains the stages\n" +
		file + `:11:17: eval.sbatch_args[0]: "--no-such-option" is not an sbatch option` + "\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("owned and unknown options: exit %d:\n%s\nwant:\n%s", r.code, r.stderr, want)
	}

	if err := os.WriteFile(file, []byte(`name: opts
data: {inputs: [`+repoRoot(t)+`/examples/tiny/data/*.jsonl]}
train:
  gpus_per_node: h100:2
  tasks_per_node: 2
  constraint: ib&nvlink
  reservation: nope
  python: /bin/sh
  script: `+repoRoot(t)+`/cmd/slurmtune/testdata/quick_train.sh
eval: {python: /bin/sh, script: `+repoRoot(t)+`/cmd/slurmtune/testdata/quick_eval.sh}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = slurmtune(t, db, "validate", file, "--cluster")
	for _, want := range []string{
		file + `:4:18: train.gpus_per_node: the cluster has no GPUs of type "h100" (it has: a100)`,
		file + `:6:15: train.constraint: no node of the cluster has the feature "nvlink" (they have: bigmem, ib)`,
		file + `:7:16: train.reservation: the cluster has no reservation "nope" (it has: st-dev)`,
	} {
		if r.code != 2 || !strings.Contains(r.stderr, want+"\n") {
			t.Errorf("validate --cluster of what the cluster lacks: exit %d, stderr lacks %q:\n%s", r.code, want, r.stderr)
		}
	}
}
