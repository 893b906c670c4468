package rest

import (
	"bytes"
	"os"
	"testing"

	"github.com/slurmtune/slurmtune/slurm/rest/internal/gen"
)

// TestAdaptersInStep: api0041.go is exactly what scripts/gen-rest.sh
// derives from api0040.go, the one source of both adapters.
func TestAdaptersInStep(t *testing.T) {
	src, err := os.ReadFile("api0040.go")
	if err != nil {
		t.Fatal(err)
	}
	want, err := gen.DeriveAdapter(src, "0040", "0041")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("api0041.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("api0041.go is not what api0040.go generates: edit api0040.go and run scripts/gen-rest.sh adapters")
	}
}

// TestNoVal: the number-or-infinite wrappers of both versions read and
// write through the one generic helper.
func TestNoVal(t *testing.T) {
	var p *noValue
	if noVal(p) != 0 {
		t.Error("nil wrapper is not 0")
	}
	setNoVal(&p, noValue{Set: ptr(true), Number: ptr(int64(42))})
	if noVal(p) != 42 {
		t.Errorf("set wrapper = %d, want 42", noVal(p))
	}
	for _, v := range []noValue{{Set: ptr(false), Number: ptr(int64(7))}, {Infinite: ptr(true), Number: ptr(int64(7))}} {
		if got := noVal(&v); got != 0 {
			t.Errorf("unset or infinite wrapper %+v = %d, want 0", v, got)
		}
	}
}
