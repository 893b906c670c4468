package jobs

import (
	"strings"
	"testing"
	"time"
)

const deployBase = `name: t
data:
  inputs: [d.jsonl]
train:
  script: train.py
`

func TestDeployServingKeys(t *testing.T) {
	src := deployBase + `deploy:
  strategy: canary
  serve:
    command: [python3, ../scripts/payloads/tiny_serve.py, --model, "{model}", --port, "{port}"]
    mem: 1G
  smoke:
    prompts:
      - {prompt: "Hello", expect: [" "], regex: "^.+$"}
      - prompt: "Bye"
    min_success: 1
  rollback_window: 30s
  canary: {percent: 25, duration: 1m}
  router: {state: shared/router.json}
monitor:
  webhook: https://hooks.example/x
  psi: {warn: 0.2, alert: 0.4}
`
	p, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Deploy
	if d.Serve.Command[1] != "/srv/scripts/payloads/tiny_serve.py" || d.Serve.Command[3] != "{model}" {
		t.Errorf("serve.command %q", d.Serve.Command)
	}
	if d.Router.State != "/srv/x/shared/router.json" {
		t.Errorf("router.state %q", d.Router.State)
	}
	if d.Canary.Percent != 25 || d.Canary.MinRequests != 20 || *d.Canary.ErrorRateMargin != 0.02 || d.RollbackWindow.Duration != 30*time.Second {
		t.Errorf("canary defaults %+v", d.Canary)
	}
	if d.Smoke.Prompts[1].MaxTokens != 16 || d.Smoke.Latency.Duration != 30*time.Second || d.Serve.CPUs != 1 || d.Serve.Mem.MiB != 1024 {
		t.Errorf("smoke/serve defaults %+v %+v", d.Smoke, d.Serve)
	}
	// Unless given, the stage's time covers startup, canary and rollback window.
	if want := 10*time.Minute + time.Minute + 30*time.Second + 10*time.Minute; d.Time.Duration != want {
		t.Errorf("deploy.time %s, want %s", d.Time.Duration, want)
	}
	if p.Monitor.Webhook == "" || p.Monitor.PSI.Alert != 0.4 {
		t.Errorf("monitor %+v", p.Monitor)
	}
	// The snapshot reads back the same.
	snap, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Parse("snap.yaml", "/elsewhere/p.yaml", snap, LoadOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, snap)
	}
	if strings.Join(p2.Deploy.Serve.Command, " ") != strings.Join(d.Serve.Command, " ") || p2.Deploy.Time != d.Time || p2.Monitor.PSI != p.Monitor.PSI {
		t.Errorf("snapshot round trip:\n%s", snap)
	}
	// With strategy record nothing of it is filled in.
	p3, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(deployBase), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p3.Deploy.Serve.Command) != 0 || p3.Deploy.Time.Duration != 10*time.Minute {
		t.Errorf("record deploy got serving defaults: %+v", p3.Deploy)
	}
}

func TestDeployServingInvalid(t *testing.T) {
	tests := []struct {
		name string
		sets []string
		want string
	}{
		{"no router", []string{"deploy.strategy=blue-green"}, "deploy.router: a blue-green deploy needs deploy.router.state"},
		{"percent", []string{"deploy.strategy=canary", "deploy.router.state=/s.json", "deploy.canary.percent=100"}, "deploy.canary.percent: must be between 1 and 99"},
		{"regex", []string{"deploy.strategy=canary", "deploy.router.state=/s.json", `deploy.smoke.prompts=[{prompt: x, regex: "("}]`}, "deploy.smoke.prompts[0].regex"},
		{"min success", []string{"deploy.strategy=blue-green", "deploy.router.state=/s.json", "deploy.smoke.min_success=2"}, "deploy.smoke.min_success: must be between 0 (all) and the number of prompts (1)"},
		{"admin token", []string{"deploy.strategy=blue-green", "deploy.router.admin_url=http://r:8080"}, "deploy.router.token_file"},
		{"short time", []string{"deploy.strategy=canary", "deploy.router.state=/s.json", "deploy.time=5m"}, "deploy.time: 00:05:00 is shorter than the deploy needs"},
		{"checkpoint with train", []string{"deploy.strategy=blue-green", "deploy.router.state=/s.json", "deploy.checkpoint=/ck"}, "deploy.checkpoint: serves an existing checkpoint"},
		{"webhook", []string{"monitor.webhook=ftp://x"}, "monitor.webhook"},
		{"psi order", []string{"monitor.psi.warn=0.5", "monitor.psi.alert=0.2"}, "monitor.psi: warn 0.5 is above alert 0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(deployBase), LoadOptions{Sets: tt.sets})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}
