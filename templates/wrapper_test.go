package templates

import "testing"

// TestRenderWrapper renders the batch script of `slurmtune sbatch` with
// hostile paths and arguments against its golden file; it must pass
// shellcheck and bash -n and keep the user's #SBATCH lines first.
func TestRenderWrapper(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]Wrapper{
		"full": {RunID: "my-job-sh-20261202-001500-3fa9", Dir: hostileDir, GPUDir: hostileDir + "/gpu", Script: hostileDir + "/script",
			Slurmtune: "/opt/slurm tune/bin/slurmtune", Args: []string{"one two", "$(touch pwned)", "it's", ""},
			Directives: []string{"#SBATCH --time=5", `#SBATCH --output="a b.log" # trailing`}, Forward: []string{"USR1", "USR2", "TERM"}},
		"bare": {RunID: "wrap-20261202-001500-3fa9", Dir: "/home/u/.local/state/slurmtune/jobs/wrap-1", GPUDir: "/home/u/.local/state/slurmtune/jobs/wrap-1/gpu",
			Script: "/home/u/.local/state/slurmtune/jobs/wrap-1/script", Slurmtune: "/usr/bin/slurmtune", Forward: []string{"USR1", "USR2"}},
	} {
		t.Run(name, func(t *testing.T) {
			body, err := s.RenderWrapper(w)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "wrapper/"+name+".sbatch", body)
			shellcheck(t, name+".sbatch", body)
			bashSyntax(t, name+".sbatch", body)
			checkDirectives(t, name+".sbatch", body)
		})
	}
}
