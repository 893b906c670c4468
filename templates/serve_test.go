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
