package slogamqp

import (
	"log/slog"
	"sync"
	"time"
)

// entry is one encoded record on its way to the broker.
type entry struct {
	body   *[]byte // from bodies; the JSON object without its newline
	time   time.Time
	level  slog.Level
	key    string // routing key
	seq    uint64 // per-producer sequence number, set when first sent
	report bool   // a drop report: outside the buffer's limits and counts
}

// bodies recycles record bodies, so that a steady stream of records
// allocates nothing.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func freeBody(b *[]byte) {
	if cap(*b) > 64<<10 { // let rare huge records go instead of pinning them
		return
	}
	bodies.Put(b)
}

// ring is a FIFO of entries that grows by doubling and never shrinks.
type ring struct {
	buf     []entry
	head, n int
}

func (r *ring) len() int { return r.n }

func (r *ring) push(e entry) {
	if r.n == len(r.buf) {
		buf := make([]entry, max(16, 2*len(r.buf)))
		for i := range r.n {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

func (r *ring) pop() entry {
	e := r.buf[r.head]
	r.buf[r.head] = entry{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return e
}

func (r *ring) at(i int) *entry { return &r.buf[(r.head+i)%len(r.buf)] }

// queue is the bounded buffer between Handle and the publisher. Its limits
// count every record from Handle until the broker confirms it, so memory
// stays bounded however long the broker is away.
type queue struct {
	mu         sync.Mutex
	pending    ring // not yet taken by the publisher
	records    int  // pending plus taken and not yet released
	bytes      int
	reports    int // drop reports held, outside the limits
	maxRecords int
	maxBytes   int
	overflow   Overflow
	closed     bool

	handled    uint64
	dropped    uint64
	unreported uint64 // drops not yet told in a drop report

	wake chan struct{} // signalled when pending becomes non-empty
}

func newQueue(maxRecords, maxBytes int, overflow Overflow) *queue {
	return &queue{maxRecords: maxRecords, maxBytes: maxBytes, overflow: overflow, wake: make(chan struct{}, 1)}
}

// put copies body into the buffer and reports whether it was kept. Records
// evicted to make room (DropOldest) are appended to *evicted when it is not
// nil, and freed otherwise.
func (q *queue) put(body []byte, e entry, evicted *[]entry) bool {
	b := bodies.Get().(*[]byte)
	*b = append((*b)[:0], body...)
	e.body = b
	size := len(body)

	q.mu.Lock()
	q.handled++
	for q.closed || size > q.maxBytes || q.records >= q.maxRecords || q.bytes+size > q.maxBytes {
		if q.closed || size > q.maxBytes || q.overflow != DropOldest || q.pending.len() == 0 {
			q.dropped++
			if !q.closed {
				q.unreported++
			}
			q.mu.Unlock()
			freeBody(b)
			return false
		}
		old := q.pending.pop()
		q.records--
		q.bytes -= len(*old.body)
		q.dropped++
		q.unreported++
		if evicted != nil {
			*evicted = append(*evicted, old)
		} else {
			freeBody(old.body)
		}
	}
	q.pending.push(e)
	q.records++
	q.bytes += size
	first := q.pending.len() == 1
	q.mu.Unlock()

	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take hands the oldest pending record to the publisher, which releases it
// once it is confirmed or given up.
func (q *queue) take() (entry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending.len() == 0 {
		return entry{}, false
	}
	return q.pending.pop(), true
}

// release frees a record taken from the queue.
func (q *queue) release(e entry) {
	q.mu.Lock()
	if e.report {
		q.reports--
	} else {
		q.records--
		q.bytes -= len(*e.body)
	}
	q.mu.Unlock()
	freeBody(e.body)
}

// takeUnreported returns the drops not yet reported and marks them
// reported.
func (q *queue) takeUnreported() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.unreported
	q.unreported = 0
	return n
}

// putReport queues a drop report. It bypasses the limits: there is at most
// one per catching up, and it is small.
func (q *queue) putReport(body []byte, e entry) {
	b := bodies.Get().(*[]byte)
	*b = append((*b)[:0], body...)
	e.body, e.report = b, true
	q.mu.Lock()
	q.pending.push(e)
	q.reports++
	q.mu.Unlock()
}

// idle reports whether nothing is held, pending or taken.
func (q *queue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.records == 0 && q.reports == 0
}

// close makes every later put drop, and reports whether nothing is held.
func (q *queue) close() (idle bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	return q.records == 0 && q.reports == 0
}

// drain removes every pending record, for Close once the publisher is gone.
func (q *queue) drain() []entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]entry, 0, q.pending.len())
	for q.pending.len() > 0 {
		out = append(out, q.pending.pop())
	}
	return out
}

// counts returns the handled, dropped and buffered records.
func (q *queue) counts() (handled, dropped uint64, buffered int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.handled, q.dropped, q.records
}
