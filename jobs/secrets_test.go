package jobs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsAndShare(t *testing.T) {
	src := deployBase + `share: group
environment:
  env: {OMP_NUM_THREADS: "1"}
  secrets:
    HF_TOKEN: {file: ~/.secrets/hf}
    WANDB_API_KEY: {env: WANDB_KEY}
`
	p, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Environment.Secrets["HF_TOKEN"]; s.File != "~/.secrets/hf" || s.Env != "" {
		t.Errorf("HF_TOKEN = %+v", s)
	}
	if s := p.Environment.Secrets["WANDB_API_KEY"]; s.Env != "WANDB_KEY" {
		t.Errorf("WANDB_API_KEY = %+v", s)
	}
	if m := p.Modes(); m != (Modes{Dir: 0o750, File: 0o640, Script: 0o750}) {
		t.Errorf("group modes %v", m)
	}
	snap, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(snap), "WANDB_KEY") || !strings.Contains(string(snap), "share: group") {
		t.Errorf("snapshot lost the references:\n%s", snap)
	}
	priv, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(deployBase), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := priv.Modes(); m.Dir != 0o700 || m.File != 0o600 || m.Script != fs.FileMode(0o700) {
		t.Errorf("private modes %v", m)
	}

	for name, tc := range map[string]struct{ yaml, want string }{
		"both":       {"environment: {secrets: {A: {file: /x, env: B}}}", "p.yaml:9:5: environment.secrets.A: give exactly one of"},
		"neither":    {"environment: {secrets: {A: {}}}", "environment.secrets.A: give exactly one of"},
		"relative":   {"environment: {secrets: {A: {file: x/y}}}", "environment.secrets.A.file: \"x/y\": want an absolute path"},
		"bad name":   {"environment: {secrets: {1A: {env: B}}}", "is not a valid environment variable name"},
		"ssh env":    {"cluster: {transport: ssh, ssh: {host: h}}\nenvironment: {secrets: {A: {env: B}}}", "the ssh transport passes a job's environment on the login node's command line"},
		"both kinds": {"environment: {env: {A: x}, secrets: {A: {env: B}}}", "environment.secrets.A: also set in environment.env"},
		"share":      {"share: world", "share: must be private or group"},
		"unknown":    {"environment: {secrets: {A: {path: /x}}}", `unknown key "path"`},
	} {
		_, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(deployBase+tc.yaml+"\n"), LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(tc.want, "p.yaml:9:5: ")) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestTokenLikeEnvWarns(t *testing.T) {
	src := deployBase + `environment:
  env:
    HF_TOKEN: hf_abcdefghijklmnopqrstuvwxyz
    AWS_ACCESS_KEY_ID: AKIAIOSFODNN7EXAMPLE
    OPENAI_API_KEY: "sk-proj-0123456789abcdef"
    GH: ghp_0123456789abcdefghij
    HF_HOME: /scratch/hf
    MODE: skip-nothing
`
	p, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range p.Warnings("p.yaml") {
		got = append(got, w.Error())
	}
	if len(got) != 4 {
		t.Fatalf("warnings %q, want 4", got)
	}
	for i, want := range []string{
		"p.yaml:9:24: warning: environment.env.AWS_ACCESS_KEY_ID: the value looks like a token (AKIA...)",
		"environment.env.GH:", "environment.env.HF_TOKEN:", "environment.env.OPENAI_API_KEY: the value looks like a token (sk-...)",
	} {
		if !strings.Contains(got[i], want) || !strings.Contains(got[i], "environment.secrets") {
			t.Errorf("warning %d = %q, want ~ %q", i, got[i], want)
		}
		if strings.Contains(got[i], "abcdefghijklmnop") || strings.Contains(got[i], "IOSFODNN7") {
			t.Errorf("warning %d shows the value: %q", i, got[i])
		}
	}
}

func TestSecretFileModeWarns(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	private := filepath.Join(dir, "private")
	for _, err := range []error{os.WriteFile(open, []byte("x"), 0o644), os.Chmod(open, 0o644), os.WriteFile(private, []byte("x"), 0o600)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	src := deployBase + "environment:\n  secrets:\n    A: {file: " + open + "}\n    B: {file: " + private + "}\n    C: {file: " + filepath.Join(dir, "missing") + "}\n"
	p, err := Parse("p.yaml", "/srv/x/p.yaml", []byte(src), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws := p.Warnings("p.yaml")
	if len(ws) != 2 || !strings.Contains(ws[0].Error(), "p.yaml:8:") || !strings.Contains(ws[0].Error(), "environment.secrets.A.file: "+open+" is readable by group or others (mode -rw-r--r--)") ||
		!strings.Contains(ws[1].Error(), "environment.secrets.C.file:") {
		t.Errorf("warnings %v", ws)
	}
}
