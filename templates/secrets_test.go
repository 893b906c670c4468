package templates

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFileFunction runs the scripts' slurmtune_secret function under
// bash with xtrace on: a 0600 file is exported without its value reaching
// the trace (the job log), and a file others can read stops the script.
func TestSecretFileFunction(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "tok")
	const value = "hf_valueThatMustNotBeTraced"
	if err := os.WriteFile(secret, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := loadTiny(t, "environment.secrets.HF_TOKEN.file="+secret)
	body := string(render(t, p, tinyRun)["prep"].Body)
	start := strings.Index(body, "slurmtune_secret() {")
	end := strings.Index(body[start:], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatalf("no slurmtune_secret function in:\n%s", body)
	}
	fn := body[start : start+end+3]
	run := func(file string) (string, string, error) {
		script := "set -euo pipefail\nset -x\n" + fn + "slurmtune_secret HF_TOKEN " + Quote(file) + "\nset +x\nprintf '%s' \"$HF_TOKEN\"\n"
		cmd := exec.Command("bash", "-c", script)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		return so.String(), se.String(), err
	}
	out, trace, err := run(secret)
	if err != nil || out != value {
		t.Fatalf("exported %q, %v\n%s", out, err, trace)
	}
	if strings.Contains(trace, value) {
		t.Errorf("the value is in the xtrace output:\n%s", trace)
	}
	if !strings.Contains(trace, "slurmtune_secret HF_TOKEN") {
		t.Errorf("xtrace was switched off for good:\n%s", trace)
	}
	if err := os.Chmod(secret, 0o640); err != nil {
		t.Fatal(err)
	}
	out, msg, err := run(secret)
	if err == nil || out != "" || !strings.Contains(msg, "slurmtune: secret HF_TOKEN: "+secret+" is readable by group or others (mode 640): chmod 600") {
		t.Errorf("group-readable file: %v, %q\n%s", err, out, msg)
	}
	if _, msg, err := run(filepath.Join(dir, "missing")); err == nil || !strings.Contains(msg, "cannot read") {
		t.Errorf("missing file: %v\n%s", err, msg)
	}
}
