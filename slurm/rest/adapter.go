package rest

import "strings"

// The v0.0.40 adapter (api0040.go, Slurm 23.11 to 24.11) is the one source
// of the adapters of the API versions that share its shape: api0041.go
// (v0.0.41, Slurm 24.05 to 25.05) is generated from it by
// scripts/gen-rest.sh (go run ./slurm/rest/internal/gen/adapter), which
// renames the package and the few generated types whose names differ
// (gen.AdapterRenames). Edit api0040.go and regenerate; TestAdaptersInStep
// fails when api0041.go is not what the generator makes of it. Where the
// versions name a type differently but give it the same shape (their
// number-or-infinite wrappers), the code is generic over that shape.

// noValue is the shape of slurmrestd's number-or-infinite wrappers
// (V0040Uint32NoVal, V0041OpenapiSlurmdbdJobsRespJobsInnerArrayTaskId...).
type noValue = struct {
	Infinite *bool  `json:"infinite,omitempty"`
	Number   *int64 `json:"number,omitempty"`
	Set      *bool  `json:"set,omitempty"`
}

// noVal is the number a wrapper holds, 0 when unset or infinite.
func noVal[T ~noValue](p *T) int64 {
	if p == nil {
		return 0
	}
	v := noValue(*p)
	if v.Set != nil && !*v.Set || deref(v.Infinite) {
		return 0
	}
	return deref(v.Number)
}

// setNoVal sets *dst to a wrapper holding v.
func setNoVal[T ~noValue](dst **T, v noValue) {
	t := T(v)
	*dst = &t
}

// gresToTRES turns sbatch's --gres list ("gpu:4,nic:1") into the
// tres_per_node form v0.0.40+ take ("gres/gpu:4,gres/nic:1").
func gresToTRES(gres string) string {
	if gres == "" {
		return ""
	}
	parts := strings.Split(gres, ",")
	for i, p := range parts {
		if !strings.Contains(p, "/") {
			parts[i] = "gres/" + p
		}
	}
	return strings.Join(parts, ",")
}
