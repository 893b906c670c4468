package templates

import (
	"bytes"
	"fmt"
)

// WrapperStage is the one stage of a run made by `slurmtune sbatch`.
const WrapperStage = "job"

// Wrapper is what the batch script of `slurmtune sbatch` needs: it runs the
// user's script (a copy, Script) with its Args and the GPU exporter on every
// node of the allocation, and stops the exporter when the script ends.
type Wrapper struct {
	RunID, Dir, GPUDir, Script string
	// Slurmtune is the slurmtune binary as the compute nodes see it.
	Slurmtune string
	Args      []string
	// Directives are the user's script's own #SBATCH lines, copied as they are.
	Directives []string
	// Forward are the signals passed on to the user's script.
	Forward []string
}

// RenderWrapper renders the batch script of `slurmtune sbatch`.
func (s *Set) RenderWrapper(w Wrapper) ([]byte, error) {
	var buf bytes.Buffer
	data := struct {
		Wrapper
		Stage string
	}{w, WrapperStage}
	if err := s.t.ExecuteTemplate(&buf, "wrapper.sbatch.tmpl", data); err != nil {
		return nil, fmt.Errorf("render the sbatch wrapper: %w", err)
	}
	return buf.Bytes(), nil
}
