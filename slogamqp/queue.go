package slogamqp

import (
	"log/slog"
	"sync"
	"time"
)

// entry is one encoded record waiting in the queue.
type entry struct {
	body   *[]byte // from bodies; the JSON object without its newline
	time   time.Time
	level  slog.Level
	key    string // routing key
	report bool   // a drop report: outside the buffer's limits and counts
}

// message is what the publisher sends: one record or, in batch mode,
// several. It is charged to the queue's limits until released.
type message struct {
	body    *[]byte
	batch   bool   // body is from batchBodies
	sent    bool   // sent at least once: a later send is a resend
	records int    // records it carries, drop reports included
	reports int    // drop reports among them
	bytes   int    // bytes charged to the queue
	seq     uint64 // per-producer sequence number of its first record
	time    time.Time
	level   slog.Level
	key     string
}

// bodies recycles record bodies, so that a steady stream of records
// allocates nothing.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// batchBodies recycles batch bodies apart from record bodies: a record
// sitting in a batch-sized buffer would hold far more memory than the
// buffer's byte limit counts.
var batchBodies = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func freeBody(b *[]byte) {
	if cap(*b) > 64<<10 { // let rare huge records go instead of pinning them
		return
	}
	bodies.Put(b)
}

// ring is a FIFO that grows by doubling and never shrinks.
type ring[T any] struct {
	buf     []T
	head, n int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(e T) {
	if r.n == len(r.buf) {
		buf := make([]T, max(16, 2*len(r.buf)))
		for i := range r.n {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = e
	r.n++
}

func (r *ring[T]) pop() T {
	var zero T
	e := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return e
}

func (r *ring[T]) at(i int) *T { return &r.buf[(r.head+i)%len(r.buf)] }

// queue is the bounded buffer between Handle and the publisher. Its limits
// count every record from Handle until the broker confirms it, so memory
// stays bounded however long the broker is away.
type queue struct {
	mu         sync.Mutex
	pending    ring[entry] // not yet taken by the publisher
	pendBytes  int         // bytes of pending
	records    int         // pending plus taken and not yet released
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
		q.pendBytes -= len(*old.body)
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
	q.pendBytes += size
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

// take hands the oldest pending record to the publisher as a message of
// its own, charged to the queue until released.
func (q *queue) take() (message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending.len() == 0 {
		return message{}, false
	}
	e := q.pending.pop()
	m := message{body: e.body, records: 1, time: e.time, level: e.level, key: e.key}
	if e.report {
		m.reports = 1
	} else {
		m.bytes = len(*e.body)
		q.pendBytes -= m.bytes
	}
	return m, true
}

// full reports whether pending holds at least a batch of records or bytes.
func (q *queue) full(records, bytes int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending.len() >= records || q.pendBytes >= bytes
}

// takeBatch hands the oldest pending records that share a routing key, up
// to maxRecords and about maxBytes, to the publisher as one message whose
// body holds them one per line (NDJSON).
func (q *queue) takeBatch(maxRecords, maxBytes int) (message, bool) {
	body := batchBodies.Get().(*[]byte)
	*body = (*body)[:0]
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending.len() == 0 {
		batchBodies.Put(body)
		return message{}, false
	}
	first := q.pending.at(0)
	m := message{body: body, batch: true, time: first.time, level: first.level, key: first.key}
	for q.pending.len() > 0 && m.records < maxRecords {
		e := *q.pending.at(0)
		if m.records > 0 && (e.key != m.key || len(*body)+len(*e.body) >= maxBytes) {
			break
		}
		q.pending.pop()
		*body = append(append(*body, *e.body...), '\n')
		m.records++
		if e.report {
			m.reports++
		} else {
			m.bytes += len(*e.body)
			q.pendBytes -= len(*e.body)
		}
		freeBody(e.body)
	}
	*body = (*body)[:len(*body)-1]
	return m, true
}

// release frees a message once confirmed or given up.
func (q *queue) release(m message) {
	q.mu.Lock()
	q.reports -= m.reports
	q.records -= m.records - m.reports
	q.bytes -= m.bytes
	q.mu.Unlock()
	if m.batch {
		batchBodies.Put(m.body)
	} else {
		freeBody(m.body)
	}
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
		e := q.pending.pop()
		if e.report {
			q.reports--
		} else {
			q.records--
			q.bytes -= len(*e.body)
			q.pendBytes -= len(*e.body)
		}
		out = append(out, e)
	}
	return out
}

// counts returns the handled, dropped and buffered records.
func (q *queue) counts() (handled, dropped uint64, buffered int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.handled, q.dropped, q.records
}
