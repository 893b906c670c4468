package dataprep

import (
	"encoding/binary"
	"math/bits"
)

// Non-cryptographic hashing used for de-duplication, shingles and the split.
// Everything here is deterministic across processes and platforms.

const (
	xxPrime1 uint64 = 11400714785074694791
	xxPrime2 uint64 = 14029467366897019727
	xxPrime3 uint64 = 1609587929392839161
	xxPrime4 uint64 = 9650029242287828579
	xxPrime5 uint64 = 2870177450012600261
)

func xxRound(acc, in uint64) uint64 {
	acc += in * xxPrime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * xxPrime1
}

func xxMerge(acc, v uint64) uint64 {
	acc ^= xxRound(0, v)
	return acc*xxPrime1 + xxPrime4
}

// xxh64 is the XXH64 hash of b with the given seed.
func xxh64(b []byte, seed uint64) uint64 {
	n := len(b)
	var h uint64
	if n >= 32 {
		v1 := seed + xxPrime1 + xxPrime2
		v2 := seed + xxPrime2
		v3 := seed
		v4 := seed - xxPrime1
		for len(b) >= 32 {
			v1 = xxRound(v1, binary.LittleEndian.Uint64(b[0:8]))
			v2 = xxRound(v2, binary.LittleEndian.Uint64(b[8:16]))
			v3 = xxRound(v3, binary.LittleEndian.Uint64(b[16:24]))
			v4 = xxRound(v4, binary.LittleEndian.Uint64(b[24:32]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) +
			bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxMerge(h, v1)
		h = xxMerge(h, v2)
		h = xxMerge(h, v3)
		h = xxMerge(h, v4)
	} else {
		h = seed + xxPrime5
	}
	h += uint64(n)
	for ; len(b) >= 8; b = b[8:] {
		h ^= xxRound(0, binary.LittleEndian.Uint64(b[:8]))
		h = bits.RotateLeft64(h, 27)*xxPrime1 + xxPrime4
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b[:4])) * xxPrime1
		h = bits.RotateLeft64(h, 23)*xxPrime2 + xxPrime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * xxPrime5
		h = bits.RotateLeft64(h, 11) * xxPrime1
	}
	h ^= h >> 33
	h *= xxPrime2
	h ^= h >> 29
	h *= xxPrime3
	h ^= h >> 32
	return h
}

// mix64 is the splitmix64 finaliser: a bijective, well-mixing function.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// splitmix64 returns the next value of the splitmix64 generator at *state.
func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	return mix64(*state)
}

// combineHashes folds an ordered list of hashes into one.
func combineHashes(hs []uint64) uint64 {
	h := uint64(0x27d4eb2f165667c5)
	for _, v := range hs {
		h = bits.RotateLeft64(h^v, 29) * xxPrime1
	}
	return mix64(h)
}

// unitFloat maps a hash to [0,1).
func unitFloat(h uint64) float64 {
	return float64(h>>11) / (1 << 53)
}

// idTable is a compact open-addressing hash table from well-mixed 64-bit keys
// to 32-bit record ids (12 bytes per slot, load factor <= 3/4). Key 0 is
// reserved internally.
type idTable struct {
	keys []uint64
	vals []uint32
	n    int
	mask uint64
}

func newIDTable(sizePow2 int) *idTable {
	return &idTable{keys: make([]uint64, sizePow2), vals: make([]uint32, sizePow2), mask: uint64(sizePow2 - 1)}
}

func fixKey(k uint64) uint64 {
	if k == 0 {
		return 0x9e3779b97f4a7c15
	}
	return k
}

// get returns the id stored for k.
func (t *idTable) get(k uint64) (uint32, bool) {
	k = fixKey(k)
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			return 0, false
		}
	}
}

// getOrInsert returns the id stored for k and true, or stores v and returns
// v and false.
func (t *idTable) getOrInsert(k uint64, v uint32) (uint32, bool) {
	k = fixKey(k)
	if (t.n+1)*4 > len(t.keys)*3 {
		t.grow()
	}
	for i := k & t.mask; ; i = (i + 1) & t.mask {
		switch t.keys[i] {
		case k:
			return t.vals[i], true
		case 0:
			t.keys[i] = k
			t.vals[i] = v
			t.n++
			return v, false
		}
	}
}

func (t *idTable) grow() {
	old := *t
	size := len(old.keys) * 2
	t.keys = make([]uint64, size)
	t.vals = make([]uint32, size)
	t.mask = uint64(size - 1)
	for j, k := range old.keys {
		if k == 0 {
			continue
		}
		i := k & t.mask
		for t.keys[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.keys[i] = k
		t.vals[i] = old.vals[j]
	}
}
