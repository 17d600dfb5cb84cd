package sink

// window is how many recent sequence numbers per producer are remembered
// to tell a duplicate from a late record. A resend repeats at most the
// publisher's in-flight window, far less than this.
const window = 1 << 14

// maxProducers bounds the producers tracked; the one heard from longest
// ago is forgotten first.
const maxProducers = 4096

// tracker detects, per producer, records missed (gaps) and records
// received twice (duplicates), from the producer and seq headers.
type tracker struct {
	producers map[string]*producer
	clock     uint64
	missing   uint64 // records missing now, over all producers
}

type producer struct {
	max  uint64 // highest seq seen
	seen [window / 64]uint64
	used uint64 // tracker clock when last heard from
	// missing counts seqs below max not yet received: a gap, until a late
	// resend fills it.
	missing uint64
}

func newTracker() *tracker { return &tracker{producers: map[string]*producer{}} }

// observe records seq from id. It reports whether the record is a
// duplicate, and how many records the tracker now knows to be missing
// that it did not before (a new gap).
func (t *tracker) observe(id string, seq uint64) (dup bool, gap uint64) {
	t.clock++
	p := t.producers[id]
	if p == nil {
		if len(t.producers) >= maxProducers {
			t.evict()
		}
		// The first record heard from a producer starts its count: a sink
		// started late has not missed what came before.
		p = &producer{max: seq}
		p.set(seq)
		p.used = t.clock
		t.producers[id] = p
		return false, 0
	}
	p.used = t.clock
	switch {
	case seq > p.max:
		n := seq - p.max - 1
		for s := p.max + 1; s < seq && s-p.max <= window; s++ {
			p.clear(s)
		}
		if n >= window {
			p.seen = [window / 64]uint64{}
		}
		p.max = seq
		p.set(seq)
		p.missing += n
		t.missing += n
		return false, n
	case p.max-seq >= window:
		return false, 0 // too old to tell; write it
	case p.has(seq):
		return true, 0
	default:
		p.set(seq)
		if p.missing > 0 {
			p.missing--
			t.missing--
		}
		return false, 0
	}
}

func (t *tracker) evict() {
	var oldest string
	var at uint64 = ^uint64(0)
	for id, p := range t.producers {
		if p.used < at {
			oldest, at = id, p.used
		}
	}
	t.missing -= t.producers[oldest].missing
	delete(t.producers, oldest)
}

func (p *producer) set(s uint64)      { p.seen[(s/64)%(window/64)] |= 1 << (s % 64) }
func (p *producer) clear(s uint64)    { p.seen[(s/64)%(window/64)] &^= 1 << (s % 64) }
func (p *producer) has(s uint64) bool { return p.seen[(s/64)%(window/64)]&(1<<(s%64)) != 0 }
