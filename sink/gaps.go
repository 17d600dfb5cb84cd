package sink

import (
	"encoding/gob"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Each producer says in its window header how far back it may resend a
// record; the sink remembers that many recent seqs per producer, so that a
// resend is never written twice. A producer that does not say gets
// defaultWindow, and no header makes a sink hold more than maxWindow.
const (
	defaultWindow = 1 << 14
	maxWindow     = 1 << 22 // 512 KiB of bits per producer at most
)

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

// producer remembers which of its recent seqs arrived. Its bitmap grows
// with the span of seqs seen, up to its window: a short-lived producer,
// such as one run of emitlog, costs a few bytes, not the whole window.
type producer struct {
	base   uint64   // first seq heard: the count of missing records starts there
	low    uint64   // lowest seq heard: resends from before base are tracked too
	max    uint64   // highest seq seen
	window uint64   // how far back the producer may resend
	seen   []uint64 // bit s%bits of the last bits seqs; len is a power of two
	used   uint64   // tracker clock when last heard from
	// missing counts seqs below max not yet received: a gap, until a late
	// resend fills it.
	missing uint64
}

func newTracker() *tracker { return &tracker{producers: map[string]*producer{}} }

// observe records seq from id, whose window header said window (0 when
// absent). It reports whether the record is a duplicate, and how many
// records the tracker now knows to be missing that it did not before (a
// new gap).
func (t *tracker) observe(id string, seq, window uint64) (dup bool, gap uint64) {
	t.clock++
	p := t.producers[id]
	if p == nil {
		if len(t.producers) >= maxProducers {
			t.evict()
		}
		// The first record heard from a producer starts its count: a sink
		// started late has not missed what came before.
		p = &producer{base: seq, low: seq, max: seq, seen: make([]uint64, 1)}
		t.producers[id] = p
	}
	p.used = t.clock
	p.window = min(max(window, 64), maxWindow)
	if window == 0 {
		p.window = defaultWindow
	}
	switch {
	case seq > p.max:
		n := seq - p.max - 1
		p.grow(seq - p.low + 1)
		if n >= p.bits() {
			clear(p.seen)
		} else {
			for s := p.max + 1; s < seq; s++ {
				p.clear(s)
			}
		}
		p.max = seq
		p.set(seq)
		p.missing += n
		t.missing += n
		return false, n
	case p.max-seq >= p.window:
		return false, 0 // too old to tell: write it
	case seq < p.low:
		// A resend from before the first record heard (a sink started while
		// the producer had records unconfirmed): new, and remembered, so
		// that the next resend of it is a duplicate.
		p.low = seq
		p.grow(p.max - p.low + 1)
		p.set(seq)
		return false, 0
	case p.max-seq >= p.bits():
		return false, 0 // not reached: the bitmap covers low..max within the window
	case p.has(seq):
		return true, 0
	default:
		p.set(seq)
		if seq > p.base && p.missing > 0 {
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

func (p *producer) bits() uint64 { return uint64(len(p.seen)) * 64 }

// grow makes the bitmap cover span seqs, up to the window, keeping what
// it knows of the seqs up to max.
func (p *producer) grow(span uint64) {
	want := min(span, p.window)
	if want <= p.bits() {
		return
	}
	words := uint64(len(p.seen))
	for words*64 < want {
		words *= 2
	}
	old := *p
	p.seen = make([]uint64, words)
	for s := p.max; s >= p.low && p.max-s < old.bits(); s-- {
		if old.has(s) {
			p.set(s)
		}
		if s == 0 {
			break
		}
	}
}

func (p *producer) word(s uint64) *uint64 { return &p.seen[(s/64)&uint64(len(p.seen)-1)] }
func (p *producer) set(s uint64)          { *p.word(s) |= 1 << (s % 64) }
func (p *producer) clear(s uint64)        { *p.word(s) &^= 1 << (s % 64) }
func (p *producer) has(s uint64) bool     { return *p.word(s)&(1<<(s%64)) != 0 }

// trackerState is what save keeps: the tracker, and how long each file
// output was when it was saved (-1 for outputs without a size).
type trackerState struct {
	Producers map[string]producerState
	Sizes     []int64
	// Offset is the stream offset of the last record written, or -1.
	Offset int64
}

type producerState struct {
	Base, Low, Max, Window, Missing uint64
	Seen                            []uint64
}

// save writes the tracker to path atomically (a temporary file, fsynced,
// renamed over it), so that a crash leaves the old state or the new.
func (t *tracker) save(path string, sizes []int64, offset int64) error {
	st := trackerState{Producers: make(map[string]producerState, len(t.producers)), Sizes: sizes, Offset: offset}
	for id, p := range t.producers {
		st.Producers[id] = producerState{Base: p.base, Low: p.low, Max: p.max, Window: p.window, Missing: p.missing, Seen: p.seen}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := gob.NewEncoder(tmp).Encode(st); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadTracker reads what save wrote; a missing file is a new tracker.
func loadTracker(path string) (*tracker, trackerState, error) {
	t := newTracker()
	st := trackerState{Offset: -1}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, st, nil
	}
	if err != nil {
		return nil, st, err
	}
	defer f.Close()
	if err := gob.NewDecoder(f).Decode(&st); err != nil {
		return nil, st, err
	}
	for id, ps := range st.Producers {
		words := len(ps.Seen)
		if words == 0 || words&(words-1) != 0 || uint64(words)*64 > maxWindow {
			return nil, st, errors.New("corrupt: producer " + id + " has a bitmap of a bad size")
		}
		t.producers[id] = &producer{base: ps.Base, low: ps.Low, max: ps.Max, window: ps.Window, missing: ps.Missing, seen: ps.Seen}
		t.missing += ps.Missing
	}
	return t, st, nil
}
