package ui

import (
	"math"
	"testing"
)

func TestLTTB(t *testing.T) {
	n := 100000
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range xs {
		xs[i], ys[i] = float64(i), math.Sin(float64(i)/500)
	}
	ys[54321] = 50 // a spike LTTB must keep
	ox, oy := lttb(xs, ys, MaxPoints)
	if len(ox) != MaxPoints || len(oy) != MaxPoints {
		t.Fatalf("%d points, want %d", len(ox), MaxPoints)
	}
	if ox[0] != 0 || ox[len(ox)-1] != float64(n-1) {
		t.Errorf("ends %v..%v, want 0..%d", ox[0], ox[len(ox)-1], n-1)
	}
	spike := false
	for i := range ox {
		if i > 0 && ox[i] <= ox[i-1] {
			t.Fatalf("x not ascending at %d", i)
		}
		spike = spike || oy[i] == 50
	}
	if !spike {
		t.Error("the spike was dropped")
	}
	short := []float64{1, 2, 3}
	if a, _ := lttb(short, short, MaxPoints); len(a) != 3 {
		t.Errorf("a short series was changed: %v", a)
	}
}
