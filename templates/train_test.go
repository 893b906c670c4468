package templates

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmtune/slurmtune/jobs"
)

// TestRenderLaunchers renders the train script of every launcher on 1 and
// 2 nodes, with GPUs and on CPU, against golden files; every one must pass
// shellcheck and bash -n and keep its #SBATCH lines first.
func TestRenderLaunchers(t *testing.T) {
	type want struct{ lines []string }
	launchers := map[string]want{
		"srun": {lines: []string{
			`  bash -c 'export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS; exec "$@"' slurmtune-rank \`,
		}},
		"torchrun": {lines: []string{
			`  --node_rank=@SLURM_NODEID@ --rdzv_backend=c10d --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" --rdzv_id="$SLURM_JOB_ID" \`,
			`  bash -c 'trap "" USR2; exec "${@//@SLURM_NODEID@/$SLURM_NODEID}"' slurmtune-node \`,
		}},
		"deepspeed": {lines: []string{
			`export SLURMTUNE_DS_CONFIG="$SLURMTUNE_RUN_DIR/ds_config.json"`,
			`export SLURMTUNE_HOSTFILE="$SLURMTUNE_RUN_DIR/hostfile"`,
			`  bash -c 'trap "" USR2; exec "${@//@SLURM_NODEID@/$SLURM_NODEID}"' slurmtune-node \`,
		}},
	}
	for _, launcher := range []string{"srun", "torchrun", "deepspeed"} {
		for _, nodes := range []int{1, 2} {
			for _, gpu := range []bool{true, false} {
				kind, procs := "cpu", 2
				sets := []string{"train.launcher=" + launcher, fmt.Sprintf("train.nodes=%d", nodes)}
				if gpu {
					kind, procs = "gpu", 4
					sets = append(sets, "train.gpus_per_node=4", "train.tasks_per_node=4", "train.cpus=8")
				}
				name := fmt.Sprintf("%s-%dnode-%s", launcher, nodes, kind)
				t.Run(name, func(t *testing.T) {
					sc := render(t, loadTiny(t, sets...), tinyRun)["train"]
					golden(t, filepath.Join("launch", name+".sbatch"), sc.Body)
					bashSyntax(t, name, sc.Body)
					checkDirectives(t, name, sc.Body)
					shellcheck(t, name+".sbatch", sc.Body)
					lines := append([]string{
						fmt.Sprintf("#SBATCH --nodes=%d", nodes),
						fmt.Sprintf("#SBATCH --ntasks-per-node=%d", procs),
						fmt.Sprintf("export WORLD_SIZE=$(( SLURM_JOB_NUM_NODES * %d ))", procs),
						"export MASTER_PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))",
						`srun --kill-on-bad-exit=1 --wait=60 --nodes="$SLURM_JOB_NUM_NODES" ` + srunTasks(launcher, procs, gpu) + ` \`,
					}, launchers[launcher].lines...)
					switch launcher {
					case "torchrun":
						lines = append(lines, fmt.Sprintf(`  /usr/bin/python3 -m torch.distributed.run --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node=%d \`, procs))
					case "deepspeed":
						lines = append(lines, fmt.Sprintf(`printf '%%s slots=%d\n' "${SLURMTUNE_HOSTS[@]}" >"$SLURMTUNE_HOSTFILE"`, procs))
						numGPUs := ""
						if gpu {
							numGPUs = " --num_gpus=4"
						}
						lines = append(lines, `  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" --num_nodes="$SLURM_JOB_NUM_NODES"`+numGPUs+` --no_local_rank \`)
					}
					if gpu {
						lines = append(lines, "#SBATCH --gres=gpu:4")
					}
					for _, l := range lines {
						if !hasLine(sc.Body, l) {
							t.Errorf("no line %q", l)
						}
					}
					// Not preemptible: srun runs in the foreground, no trap.
					for _, l := range []string{"#SBATCH --requeue", "trap slurmtune_on_stop USR2"} {
						if hasLine(sc.Body, l) {
							t.Errorf("unexpected line %q", l)
						}
					}
				})
			}
		}
	}
}

func srunTasks(launcher string, procs int, gpu bool) string {
	if launcher == "srun" {
		return fmt.Sprintf("--ntasks-per-node=%d", procs)
	}
	cpus := procs // 1 CPU per task on CPU
	s := fmt.Sprintf(`--ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task=%d`, cpus)
	if gpu {
		s = fmt.Sprintf(`--ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task=%d --gres=gpu:4`, procs*8)
	}
	return s
}

func hasLine(body []byte, line string) bool {
	for _, l := range strings.Split(string(body), "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// TestRenderTrainOptions: preemption, chaining, network, containers.
func TestRenderTrainOptions(t *testing.T) {
	tests := []struct {
		name   string
		sets   []string
		run    Run
		want   []string
		absent []string
	}{
		{name: "preemptible", sets: []string{"train.preemptible=true", "train.max_restarts=5", "train.checkpoint.every_steps=50",
			"train.network.interface=eth0", "train.master_port_base=30000"}, run: tinyRun, want: []string{
			"#SBATCH --requeue",
			"#SBATCH --signal=B:USR2@120",
			"trap slurmtune_on_stop USR2",
			"trap slurmtune_on_term TERM",
			"export SLURMTUNE_CHECKPOINT_EVERY=50",
			"export NCCL_SOCKET_IFNAME=eth0 GLOO_SOCKET_IFNAME=eth0",
			"export MASTER_PORT=$(( 30000 + SLURM_JOB_ID % 20000 ))",
			`if ! scontrol requeue "$SLURM_JOB_ID"; then`,
			"if (( slurmtune_restart >= 5 )); then",
			"  /usr/bin/python3 /srv/scripts/payloads/tiny_lm.py train &",
		}},
		{name: "chained-signal", sets: []string{"train.chain_time_limit=true", "train.time=3h", "train.signal=USR1", "train.signal_grace=300"},
			run: Run{ID: tinyRun.ID, Dir: tinyRun.Dir, Slurmtune: tinyRun.Slurmtune, MaxTime: 30 * time.Minute}, want: []string{
				"#SBATCH --time=00:30:00", // capped at the partition's MaxTime
				"#SBATCH --requeue",
				"#SBATCH --signal=B:USR1@300",
				"export SLURMTUNE_STOP_SIGNAL=USR1",
				"if [ -n \"$slurmtune_stop\" ] && (( slurmtune_stop >= 1800 - 300 - 90 )); then",
			}},
		{name: "apptainer", sets: []string{"environment.container.runtime=apptainer", "environment.container.image=/images/train image.sif",
			"environment.container.mounts=[/data, /scratch:/mnt/scratch]", "train.gpus_per_node=2", "train.tasks_per_node=2"}, run: tinyRun, want: []string{
			`  apptainer exec --nv --bind "$SLURMTUNE_RUN_DIR" --bind /data --bind /scratch:/mnt/scratch '/images/train image.sif' /usr/bin/python3 /srv/scripts/payloads/tiny_lm.py train`,
		}},
		{name: "pyxis-torchrun", sets: []string{"environment.container.runtime=pyxis", "environment.container.image=nvcr.io#nvidia/pytorch:24.01-py3",
			"environment.container.mounts=[/data]", "train.launcher=torchrun"}, run: tinyRun, want: []string{
			`srun --kill-on-bad-exit=1 --wait=60 --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --cpus-per-task=2 --container-image='nvcr.io#nvidia/pytorch:24.01-py3' --container-mounts="$SLURMTUNE_RUN_DIR:$SLURMTUNE_RUN_DIR",/data --container-workdir="$SLURMTUNE_RUN_DIR" \`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := render(t, loadTiny(t, tt.sets...), tt.run)["train"]
			golden(t, filepath.Join("train-options", tt.name+".sbatch"), sc.Body)
			bashSyntax(t, tt.name, sc.Body)
			checkDirectives(t, tt.name, sc.Body)
			shellcheck(t, tt.name+".sbatch", sc.Body)
			for _, l := range tt.want {
				if !hasLine(sc.Body, l) {
					t.Errorf("no line %q", l)
				}
			}
		})
	}
}

// Payload stubs for TestTrainScriptRequeue: the rendered script runs for
// real, with srun and scontrol replaced by stubs on PATH.
const (
	// srun: skip srun's options, run the command (bash -c ... exec payload),
	// so srun's pid is the payload's and signals reach it.
	stubSrun = `#!/bin/bash
while [[ $1 == --* ]]; do shift; done
export SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NTASKS=1
exec "$@"
`
	stubScontrol = `#!/bin/bash
if [ "$1 $2" = "show hostnames" ]; then echo node1; echo node2; exit 0; fi
echo "$*" >>"$STUB_LOG"
if [ "$1" = requeue ]; then   # as Slurm does: SIGTERM to every process of the job
  kill -TERM "$PPID" "$(cat "$SLURMTUNE_RUN_DIR/running")" 2>/dev/null
fi
exit 0
`
	// The payload: on USR2 it checkpoints and exits 0; MODE decides the rest.
	stubPayload = `#!/bin/bash
ck=$SLURMTUNE_CHECKPOINT_DIR
stop() {
  if [ "$MODE" = stubborn ]; then return; fi
  mkdir -p "$ck/step-00000007" && touch "$ck/step-00000007/COMPLETE"
  echo "payload: stopped"; exit 0
}
trap stop USR2
echo "payload: started resume=${SLURMTUNE_RESUME_FROM:-none}"
echo $$ >"$SLURMTUNE_RUN_DIR/running.tmp" && mv "$SLURMTUNE_RUN_DIR/running.tmp" "$SLURMTUNE_RUN_DIR/running"
case $MODE in
finish) mkdir -p "$ck/final" && touch "$ck/final/COMPLETE"; exit 0 ;;
fail) exit 3 ;;
esac
for _ in $(seq 600); do sleep 0.1; done
exit 9
`
)

// TestTrainScriptRequeue runs the preemptible train script with stub srun,
// scontrol and payload, and checks what it does on the stop signal, on
// SIGTERM, at the restart cap, and when training finishes or fails.
func TestTrainScriptRequeue(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	tests := []struct {
		name     string
		mode     string // payload behaviour
		restart  int
		signal   syscall.Signal // sent to the script once the payload runs; 0: none
		resumeCK bool           // a complete checkpoint exists before the start
		code     int
		log      []string // substrings the script's output must hold
		scontrol string   // what the scontrol stub was asked (after show hostnames)
	}{
		{name: "stop request requeues", mode: "run", signal: syscall.SIGUSR2, code: 0,
			log: []string{"asking every rank to checkpoint and stop", "payload: stopped",
				"requeueing job 4242 after a stop request (preemption, or by hand) (restart 1 of at most 2); it resumes from RUN/checkpoints/step-00000007"},
			scontrol: "requeue 4242\n"},
		{name: "restart cap", mode: "run", restart: 2, signal: syscall.SIGUSR2, code: 1,
			log: []string{"slurmtune: FAILED: stopped by a stop request (preemption, or by hand) at restart 2, and train.max_restarts (2) allows no more requeues"}},
		{name: "past the cap at start", mode: "finish", restart: 3, code: 1,
			log: []string{"slurmtune: FAILED: restart 3 of the train stage is more than train.max_restarts (2): not training again"}},
		{name: "sigterm does not requeue", mode: "run", signal: syscall.SIGTERM, code: 143,
			log: []string{"SIGTERM: Slurm is ending, requeueing or preempting this job; not requeueing it here"}},
		{name: "finished", mode: "finish", code: 0, log: []string{"slurmtune: training finished"}},
		{name: "failed", mode: "fail", code: 3, log: []string{"slurmtune: the ranks failed (exit 3)"}},
		{name: "resumes", mode: "finish", restart: 1, resumeCK: true, code: 0,
			log: []string{"resume from RUN/checkpoints/step-00000003", "payload: started resume=RUN/checkpoints/step-00000003"}},
		{name: "ranks that do not stop are requeued anyway", mode: "stubborn", signal: syscall.SIGUSR2, code: 0,
			log:      []string{"slurmtune: the ranks did not stop within 5 s", "requeueing job 4242 after a stop request", "slurmtune: requeued"},
			scontrol: "requeue 4242\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			runDir := filepath.Join(dir, "run")
			bin := filepath.Join(dir, "bin")
			for _, d := range []string{runDir, bin} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, body := range map[string]string{"srun": stubSrun, "scontrol": stubScontrol, filepath.Join("..", "payload.sh"): stubPayload} {
				if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tt.resumeCK {
				for _, d := range []string{"step-00000003/COMPLETE", "step-00000005"} { // 5 is half-written
					if err := os.MkdirAll(filepath.Join(runDir, "checkpoints", filepath.Dir(d)), 0o755); err != nil {
						t.Fatal(err)
					}
					if filepath.Base(d) == "COMPLETE" {
						if err := os.WriteFile(filepath.Join(runDir, "checkpoints", d), nil, 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			p := loadTiny(t, "train.preemptible=true", "train.max_restarts=2", "train.signal_grace=20",
				"train.python="+bash, "train.script="+filepath.Join(dir, "payload.sh"), "train.args=[]")
			sc := render(t, p, Run{ID: "r1", Dir: runDir, Slurmtune: "/bin/true"})["train"]
			script := filepath.Join(dir, "train.sbatch")
			if err := os.WriteFile(script, sc.Body, 0o755); err != nil {
				t.Fatal(err)
			}
			stubLog := filepath.Join(dir, "scontrol.log")
			cmd := exec.Command(bash, script)
			cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + dir, "MODE=" + tt.mode, "STUB_LOG=" + stubLog,
				"SLURM_JOB_ID=4242", "SLURM_JOB_NUM_NODES=2", "SLURM_JOB_NODELIST=node[1-2]", fmt.Sprintf("SLURM_RESTART_COUNT=%d", tt.restart)}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.signal != 0 {
				deadline := time.Now().Add(20 * time.Second)
				var payloadPID int
				for {
					if b, err := os.ReadFile(filepath.Join(runDir, "running")); err == nil {
						if _, err := fmt.Sscan(string(b), &payloadPID); err == nil {
							break
						}
					}
					if time.Now().After(deadline) {
						_ = cmd.Process.Kill()
						t.Fatalf("the payload never started:\n%s", out.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err := cmd.Process.Signal(tt.signal); err != nil {
					t.Fatal(err)
				}
				if tt.signal == syscall.SIGTERM && payloadPID > 0 {
					// Slurm signals every process of the job, not only the script.
					if err := syscall.Kill(payloadPID, syscall.SIGTERM); err != nil {
						t.Fatal(err)
					}
				}
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("the script did not end:\n%s", out.String())
			}
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			log := strings.ReplaceAll(out.String(), runDir, "RUN")
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, log)
			}
			for _, w := range tt.log {
				if !strings.Contains(log, w) {
					t.Errorf("output lacks %q:\n%s", w, log)
				}
			}
			got, _ := os.ReadFile(stubLog)
			if string(got) != tt.scontrol {
				t.Errorf("scontrol was asked:\n%q\nwant\n%q\n%s", got, tt.scontrol, log)
			}
		})
	}
}

// TestRenderDeepSpeedEnvOnlyWhenOn: no DeepSpeed, no SLURMTUNE_DS_CONFIG.
func TestRenderDeepSpeedEnvOnlyWhenOn(t *testing.T) {
	sc := render(t, loadTiny(t), tinyRun)["train"]
	if strings.Contains(string(sc.Body), "SLURMTUNE_DS_CONFIG") {
		t.Error("SLURMTUNE_DS_CONFIG set without DeepSpeed")
	}
	sc = render(t, loadTiny(t, "train.deepspeed.zero_stage=2"), tinyRun)["train"]
	if !hasLine(sc.Body, `export SLURMTUNE_DS_CONFIG="$SLURMTUNE_RUN_DIR/ds_config.json"`) {
		t.Error("train.deepspeed with the srun launcher: no SLURMTUNE_DS_CONFIG")
	}
	if jobs.DSConfigName != "ds_config.json" {
		t.Errorf("DSConfigName = %q", jobs.DSConfigName)
	}
}
