package ui

import "math"

// MaxPoints is the most points one series is sent with.
const MaxPoints = 2000

// lttb downsamples the series (xs ascending, equal lengths) to at most n
// points with Largest-Triangle-Three-Buckets (Steinarsson 2013): the first
// and last points stay, and from each of n-2 equal buckets between them
// the point forming the largest triangle with the previously kept point and
// the next bucket's mean. Shorter series come back as they are.
func lttb(xs, ys []float64, n int) ([]float64, []float64) {
	if n >= len(xs) || n < 3 {
		return xs, ys
	}
	ox, oy := make([]float64, 0, n), make([]float64, 0, n)
	ox, oy = append(ox, xs[0]), append(oy, ys[0])
	every := float64(len(xs)-2) / float64(n-2)
	a := 0
	for i := 0; i < n-2; i++ {
		// The next bucket's mean.
		ns, ne := int(float64(i+1)*every)+1, int(float64(i+2)*every)+1
		ne = min(ne, len(xs))
		var mx, my float64
		for j := ns; j < ne; j++ {
			mx += xs[j]
			my += ys[j]
		}
		if cnt := ne - ns; cnt > 0 {
			mx, my = mx/float64(cnt), my/float64(cnt)
		} else {
			mx, my = xs[len(xs)-1], ys[len(ys)-1]
		}
		// This bucket's point with the largest triangle.
		bs, be := int(float64(i)*every)+1, int(float64(i+1)*every)+1
		best, bestArea := bs, -1.0
		for j := bs; j < be; j++ {
			area := math.Abs((xs[a]-mx)*(ys[j]-ys[a]) - (xs[a]-xs[j])*(my-ys[a]))
			if area > bestArea {
				best, bestArea = j, area
			}
		}
		ox, oy = append(ox, xs[best]), append(oy, ys[best])
		a = best
	}
	ox, oy = append(ox, xs[len(xs)-1]), append(oy, ys[len(ys)-1])
	return ox, oy
}
