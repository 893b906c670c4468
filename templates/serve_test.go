package templates

import (
	"strings"
	"testing"
)

func TestRenderServe(t *testing.T) {
	p := loadTiny(t, "deploy.strategy=blue-green", "deploy.router.state=/shared/router.json",
		`deploy.serve.command=[python3, "/opt/x y/serve.py", "--model", "{model}", "--port", "{port}"]`, "deploy.serve.gpus=1", "deploy.serve.mem=4G")
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.RenderServe(p, Run{ID: "tiny-1", Dir: hostileDir, Slurmtune: "/opt/slurmtune/bin/slurmtune"}, "/ck/it's final")
	if err != nil {
		t.Fatal(err)
	}
	body := string(sc.Body)
	for _, want := range []string{
		"#SBATCH --comment=slurmtune:tiny-1:serve",
		"#SBATCH --job-name=st-tiny-serve",
		"#SBATCH --gres=gpu:1",
		"#SBATCH --mem=4096M",
		"#SBATCH --time=00:00:00",
		`--model '/ck/it'\''s final' --name tiny-byte-lm`,
		`-- python3 '/opt/x y/serve.py' --model '{model}' --port '{port}'`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("serve script lacks %q:\n%s", want, body)
		}
	}
	if sc.Log != hostileDir+"/logs/serve.log" {
		t.Errorf("log %q", sc.Log)
	}
	// The deploy stage runs `deploy run` for a serving strategy.
	scripts := render(t, p, tinyRun)
	if !strings.Contains(string(scripts["deploy"].Body), `"$SLURMTUNE" deploy run --run-dir "$SLURMTUNE_RUN_DIR"`) {
		t.Errorf("deploy script:\n%s", scripts["deploy"].Body)
	}
}

// TestRenderServeContainer: deploy.serve.container runs the model server in
// its image (GPUs passed in, the run directory and an outside checkpoint
// mounted), with the serving job's own Slurm options; shellcheck-clean.
func TestRenderServeContainer(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		runtime, want string
	}{
		{"apptainer", `-- apptainer exec --nv --bind "$SLURMTUNE_RUN_DIR" --bind /models --bind /ck/final /img/vllm.sif vllm serve '{model}'`},
		{"pyxis", `-- srun --ntasks=1 --container-image=/img/vllm.sif --container-mounts="$SLURMTUNE_RUN_DIR:$SLURMTUNE_RUN_DIR",/models,/ck/final --container-workdir="$SLURMTUNE_RUN_DIR" vllm serve '{model}'`},
	} {
		p := loadTiny(t, "deploy.strategy=blue-green", "deploy.router.state=/shared/router.json", "deploy.serve.gpus=2",
			"deploy.serve.gpu_type=a100", "deploy.serve.constraint=ib", "deploy.serve.container.runtime="+tc.runtime,
			"deploy.serve.container.image=/img/vllm.sif", "deploy.serve.container.mounts=[/models]")
		sc, err := s.RenderServe(p, Run{ID: "tiny-1", Dir: "/scratch/runs/tiny-1", Slurmtune: "/opt/slurmtune/bin/slurmtune"}, "/ck/final")
		if err != nil {
			t.Fatal(err)
		}
		body := string(sc.Body)
		for _, want := range []string{tc.want, "#SBATCH --gres=gpu:a100:2", "#SBATCH --constraint=ib"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: serve script lacks %q:\n%s", tc.runtime, want, body)
			}
		}
		shellcheck(t, "serve-"+tc.runtime+".sbatch", sc.Body)
	}
}
