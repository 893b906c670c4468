package eval

import "hash/maphash"

// Token and n-gram bookkeeping shared by BLEU and ROUGE.
//
// Tokens are interned to int32 ids (vocab). Within one record, n-grams are
// interned to small "local" ids by ngramTable: the key of an n-gram is
// (local id of its (n-1)-gram prefix, id of its last token), packed into a
// uint64, so two n-grams get the same local id exactly when they are equal -
// no hashing of token strings and no collisions. The table is reset between
// records by bumping an epoch, which costs nothing.

// vocab interns tokens with an open-addressing table over a byte arena:
// one hash and usually one key comparison per lookup, no allocation per
// token. Equality is checked on the bytes, so ids are exact.
type vocab struct {
	seed  maphash.Seed
	slots []vocabSlot
	mask  uint64
	arena []byte
	offs  []int // offs[id-1], offs[id] delimit token id in arena
	n     int32
}

type vocabSlot struct {
	h   uint64
	inl uint64 // the key's bytes when it is at most 8 long (see pack8)
	id  int32
	n   int32 // key length
}

func newVocab() *vocab {
	v := &vocab{seed: maphash.MakeSeed()}
	v.slots = make([]vocabSlot, 1<<14)
	v.mask = uint64(len(v.slots) - 1)
	v.offs = []int{0}
	return v
}

func (v *vocab) key(id int32) []byte { return v.arena[v.offs[id-1]:v.offs[id]] }

// pack8 packs a key of at most 8 bytes into a word.
func pack8(b []byte) uint64 {
	var x uint64
	for i, c := range b {
		x |= uint64(c) << (8 * i)
	}
	return x
}

// id returns the id (>= 1) of token b. Keys of up to 8 bytes are compared
// in the slot itself, longer ones against the arena.
func (v *vocab) id(b []byte) int32 {
	h := maphash.Bytes(v.seed, b)
	short := len(b) <= 8
	var inl uint64
	if short {
		inl = pack8(b)
	}
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.id == 0 {
			return v.insert(i, h, b)
		}
		if s.h != h || s.n != int32(len(b)) {
			continue
		}
		if short {
			if s.inl == inl {
				return s.id
			}
		} else if string(v.key(s.id)) == string(b) {
			return s.id
		}
	}
}

func (v *vocab) idString(s string) int32 { return v.id([]byte(s)) }

func (v *vocab) insert(i uint64, h uint64, b []byte) int32 {
	v.n++
	v.arena = append(v.arena, b...)
	v.offs = append(v.offs, len(v.arena))
	sl := vocabSlot{h: h, id: v.n, n: int32(len(b))}
	if len(b) <= 8 {
		sl.inl = pack8(b)
	}
	v.slots[i] = sl
	if int(v.n)*2 > len(v.slots) {
		old := v.slots
		v.slots = make([]vocabSlot, 2*len(old))
		v.mask = uint64(len(v.slots) - 1)
		for _, s := range old {
			if s.id == 0 {
				continue
			}
			for j := s.h & v.mask; ; j = (j + 1) & v.mask {
				if v.slots[j].id == 0 {
					v.slots[j] = s
					break
				}
			}
		}
	}
	return v.n
}

type ngramSlot struct {
	key   uint64
	epoch uint32
	id    int32
}

// ngramTable maps n-gram keys to local ids 1..count for the current epoch.
type ngramTable struct {
	slots []ngramSlot
	mask  uint64
	epoch uint32
	count int32
	order []uint8 // order[id] = n of the n-gram with local id
}

func newNgramTable() *ngramTable {
	t := &ngramTable{}
	t.alloc(1024)
	t.epoch = 1
	return t
}

func (t *ngramTable) alloc(size int) {
	t.slots = make([]ngramSlot, size)
	t.mask = uint64(size - 1)
}

// reset starts a new epoch: all previous entries are forgotten.
func (t *ngramTable) reset() {
	t.epoch++
	t.count = 0
	t.order = t.order[:0]
	t.order = append(t.order, 0) // ids start at 1
	if t.epoch == 0 {            // wrapped: clear for real
		clear(t.slots)
		t.epoch = 1
	}
}

func hash64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	return k
}

// get returns the local id for (prefix, tok), creating it with order n.
func (t *ngramTable) get(prefix int32, tok int32, n int) int32 {
	key := uint64(uint32(prefix))<<32 | uint64(uint32(tok))
	if int(t.count+1)*2 > len(t.slots) {
		t.grow()
	}
	for i := hash64(key) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.epoch != t.epoch {
			t.count++
			*s = ngramSlot{key: key, epoch: t.epoch, id: t.count}
			t.order = append(t.order, uint8(n))
			return t.count
		}
		if s.key == key {
			return s.id
		}
	}
}

// lookup returns the local id for (prefix, tok), or 0 if absent.
func (t *ngramTable) lookup(prefix int32, tok int32) int32 {
	key := uint64(uint32(prefix))<<32 | uint64(uint32(tok))
	for i := hash64(key) & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.epoch != t.epoch {
			return 0
		}
		if s.key == key {
			return s.id
		}
	}
}

func (t *ngramTable) grow() {
	old := t.slots
	t.alloc(len(old) * 2)
	for _, s := range old {
		if s.epoch != t.epoch {
			continue
		}
		for i := hash64(s.key) & t.mask; ; i = (i + 1) & t.mask {
			if t.slots[i].epoch != t.epoch {
				t.slots[i] = s
				break
			}
		}
	}
}
