package dataprep

import (
	"math"
	"math/bits"
	"sync"
	"unicode/utf8"
)

// MinHash signatures and LSH banding for near-duplicate detection.
//
// Shingles are hashed to 64 bits; permutation i maps a shingle hash x to
// a_i*x + b_i (mod 2^64), a bijection for odd a_i, and keeps the minimum.
// The signature is cut into Bands bands of Rows values; each band is hashed
// to 64 bits and the LSH index maps band hash -> first record id, so the
// index holds only Bands small entries per distinct record.

type minHasher struct {
	a, b        []uint64
	bands, rows int
	shingle     ShingleKind
	size        int
	bandSeeds   []uint64
}

func newMinHasher(o NearDupOptions) *minHasher {
	m := &minHasher{shingle: o.Shingle, size: o.ShingleSize, bands: o.Bands, rows: o.Rows}
	if m.bands == 0 {
		m.bands, m.rows = optimalBandsRows(o.Threshold, o.NumPerm)
	}
	state := o.Seed
	m.a = make([]uint64, o.NumPerm)
	m.b = make([]uint64, o.NumPerm)
	for i := range m.a {
		m.a[i] = splitmix64(&state) | 1
		m.b[i] = splitmix64(&state)
	}
	m.bandSeeds = make([]uint64, m.bands)
	for i := range m.bandSeeds {
		m.bandSeeds[i] = splitmix64(&state)
	}
	return m
}

// shingles appends the shingle hashes of a record to dst: either word
// n-grams over the token hashes toks, or character n-grams over the
// normalised text norm. A text shorter than one shingle gives one shingle.
func (m *minHasher) shingles(norm []byte, toks []uint64, dst []uint64) []uint64 {
	k := m.size
	if m.shingle == ShingleWord {
		if len(toks) == 0 {
			return dst
		}
		if len(toks) < k {
			return append(dst, combineHashes(toks))
		}
		for i := 0; i+k <= len(toks); i++ {
			dst = append(dst, combineHashes(toks[i:i+k]))
		}
		return dst
	}
	if len(norm) == 0 {
		return dst
	}
	// Character shingles: k consecutive code points.
	var starts [65]int // ring of rune start offsets
	n := 0
	for i := 0; i < len(norm); {
		starts[n%(k+1)] = i
		n++
		_, size := utf8.DecodeRune(norm[i:])
		i += size
		if n >= k {
			from := starts[(n-k)%(k+1)]
			dst = append(dst, xxh64(norm[from:i], 0))
		}
	}
	if n < k {
		dst = append(dst, xxh64(norm, 0))
	}
	return dst
}

// signature computes the MinHash signature of the shingles into sig
// (len(sig) == NumPerm).
func (m *minHasher) signature(shingles, sig []uint64) {
	a, b := m.a, m.b[:len(m.a)]
	sig = sig[:len(a)]
	for i := range a {
		ai, bi := a[i], b[i]
		m0, m1, m2, m3 := uint64(math.MaxUint64), uint64(math.MaxUint64), uint64(math.MaxUint64), uint64(math.MaxUint64)
		x := shingles
		for len(x) >= 4 {
			m0 = min(m0, ai*x[0]+bi)
			m1 = min(m1, ai*x[1]+bi)
			m2 = min(m2, ai*x[2]+bi)
			m3 = min(m3, ai*x[3]+bi)
			x = x[4:]
		}
		for _, v := range x {
			m0 = min(m0, ai*v+bi)
		}
		sig[i] = min(m0, m1, m2, m3)
	}
}

// bandHashes writes one hash per band of sig into dst (len(dst) == bands).
func (m *minHasher) bandHashes(sig, dst []uint64) {
	r := m.rows
	for j := range dst[:m.bands] {
		h := m.bandSeeds[j]
		for _, v := range sig[j*r : j*r+r] {
			h = bits.RotateLeft64(h^v, 29) * xxPrime1
		}
		dst[j] = mix64(h)
	}
}

// optimalBandsRows picks the LSH bands b and rows r (b*r <= numPerm) that
// minimise the (equally weighted) false positive and false negative areas
// of the S-curve 1-(1-s^r)^b around the threshold, as datasketch does.
func optimalBandsRows(threshold float64, numPerm int) (bands, rows int) {
	key := [2]float64{threshold, float64(numPerm)}
	if v, ok := bandsRowsCache.Load(key); ok {
		br := v.([2]int)
		return br[0], br[1]
	}
	defer func() { bandsRowsCache.Store(key, [2]int{bands, rows}) }()
	best := math.Inf(1)
	for b := 1; b <= numPerm; b++ {
		for r := 1; r <= numPerm/b; r++ {
			fb, fr := float64(b), float64(r)
			fp := integrate(func(s float64) float64 { return 1 - math.Pow(1-math.Pow(s, fr), fb) }, 0, threshold)
			fn := integrate(func(s float64) float64 { return math.Pow(1-math.Pow(s, fr), fb) }, threshold, 1)
			if e := 0.5*fp + 0.5*fn; e < best {
				best, bands, rows = e, b, r
			}
		}
	}
	return bands, rows
}

// bandsRowsCache memoises optimalBandsRows (about 30ms per call).
var bandsRowsCache sync.Map

// integrate is composite Simpson's rule.
func integrate(f func(float64) float64, a, b float64) float64 {
	const n = 256
	h := (b - a) / n
	sum := f(a) + f(b)
	for i := 1; i < n; i++ {
		w := 2.0
		if i%2 == 1 {
			w = 4
		}
		sum += w * f(a+float64(i)*h)
	}
	return sum * h / 3
}
