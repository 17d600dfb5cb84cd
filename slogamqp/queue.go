package slogamqp

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logfan/logfan/internal/wire"
)

// entry is one encoded record waiting in the queue.
type entry struct {
	body   *[]byte // from bodies; the JSON object without its newline
	time   time.Time
	level  slog.Level
	key    string // routing key
	report bool   // a drop report: outside the buffer's limits and counts
	// durations lists the record's duration attributes (wire.HeaderDurations).
	durations string
}

// message is what the publisher sends: one record, a drop report or, in
// batch mode, several records. It is charged to the queue's limits until
// released.
type message struct {
	body    *[]byte
	batch   bool   // body was allocated for this batch, not taken from bodies
	report  bool   // a drop report, not a record
	sent    bool   // sent at least once: a later send is a resend
	records int    // records it carries (1 for a drop report)
	bytes   int    // bytes charged to the queue
	seq     uint64 // per-producer sequence number of its first record
	nacks   int    // times the broker refused it
	due     time.Time
	time    time.Time
	level   slog.Level
	key     string
	// durations lists a single record's duration attributes; "" in a batch.
	durations string
}

// bodies recycles record and batch bodies, so that a steady stream of
// records allocates nothing: one pool per size class, 512 bytes to 1 MiB
// in powers of two, so that a buffer is at most twice what it holds, and
// the limits, which count capacity, stay close to the bytes logged.
// Batches of the default 256 KiB are pooled too: without it, batch mode
// allocated every byte it sent a second time, and the GC's share of the
// producer's CPU grew with the rate.
var bodies [12]sync.Pool

const minBody = 512

// sizeClass returns the pool for buffers of capacity n, and that
// capacity, or -1 for a record too large to pool.
func sizeClass(n int) (class, capacity int) {
	c := minBody
	for class = 0; class < len(bodies); class++ {
		if n <= c {
			return class, c
		}
		c *= 2
	}
	return -1, n
}

// getBody returns an empty buffer of at least n bytes.
func getBody(n int) *[]byte {
	class, capacity := sizeClass(n)
	if class >= 0 {
		if b, ok := bodies[class].Get().(*[]byte); ok {
			return b
		}
	}
	b := make([]byte, 0, capacity)
	return &b
}

// freeBody recycles b, unless it is too large to pin.
func freeBody(b *[]byte) {
	if class, capacity := sizeClass(cap(*b)); class >= 0 && capacity == cap(*b) {
		*b = (*b)[:0]
		bodies[class].Put(b)
	}
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
// count every record from Handle until the broker confirms it, and count
// the memory each holds (the capacity of its buffer, not just its length),
// so memory stays bounded however long the broker is away.
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
	maxBlock   time.Duration
	closed     bool

	handled    uint64
	dropped    uint64
	unreported uint64    // drops not yet told in a drop report
	stretch    time.Time // when the first unreported drop happened
	lastDrop   time.Time

	wake chan struct{} // signalled when pending becomes non-empty, and on a drop
	room chan struct{} // closed when room is made, for Handle calls that Block
	// noRoom says, without the lock, that not even the smallest record
	// fits: Handle then drops without encoding (DropNewest).
	noRoom atomic.Bool
}

func newQueue(o *Options) *queue {
	return &queue{maxRecords: o.BufferRecords, maxBytes: o.BufferBytes, overflow: o.Overflow, maxBlock: o.BlockTimeout, wake: make(chan struct{}, 1)}
}

// put copies body into the buffer and reports whether it was kept. Records
// evicted to make room (DropOldest) are appended to *evicted when it is not
// nil, and freed otherwise. With Block, it waits for room until maxBlock
// has passed or ctx is done.
func (q *queue) put(ctx context.Context, body []byte, e entry, evicted *[]entry) bool {
	b := getBody(len(body))
	*b = append(*b, body...)
	e.body = b
	size := cap(*b)
	var timer *time.Timer
	waited := false

	q.mu.Lock()
	q.handled++
	for q.closed || size > q.maxBytes || q.records >= q.maxRecords || q.bytes+size > q.maxBytes {
		switch {
		case q.closed || size > q.maxBytes:
		case q.overflow == DropOldest && q.pending.len() > 0 && !q.pending.at(0).report:
			q.evict(evicted)
			continue
		case q.overflow == Block && !waited:
			if timer == nil {
				timer = time.NewTimer(q.maxBlock)
				defer timer.Stop()
			}
			waited = !q.waitForRoom(ctx, timer)
			continue
		}
		q.drop(time.Now())
		q.mu.Unlock()
		freeBody(b)
		q.signal()
		return false
	}
	q.pending.push(e)
	q.records++
	q.bytes += size
	q.pendBytes += size
	q.updateFull()
	first := q.pending.len() == 1
	q.mu.Unlock()
	if first {
		q.signal()
	}
	return true
}

// waitForRoom waits, with q.mu unlocked, until room may have been made,
// and reports false once timer or ctx ended the wait.
func (q *queue) waitForRoom(ctx context.Context, timer *time.Timer) bool {
	if q.room == nil {
		q.room = make(chan struct{})
	}
	room := q.room
	q.mu.Unlock()
	defer q.mu.Lock()
	select {
	case <-room:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// evict drops the oldest pending record, for DropOldest.
func (q *queue) evict(evicted *[]entry) {
	old := q.pending.pop()
	size := cap(*old.body)
	q.records--
	q.bytes -= size
	q.pendBytes -= size
	q.updateFull()
	q.drop(time.Now())
	if evicted != nil {
		*evicted = append(*evicted, old)
	} else {
		freeBody(old.body)
	}
}

// updateFull sets noRoom, under q.mu.
func (q *queue) updateFull() {
	q.noRoom.Store(q.closed || q.records >= q.maxRecords || q.bytes+minBody > q.maxBytes)
}

// dropIfFull drops and counts a record without taking its body, if the
// buffer is full: for DropNewest, which would drop it anyway once encoded.
func (q *queue) dropIfFull() bool {
	if !q.noRoom.Load() {
		return false
	}
	q.mu.Lock()
	if !q.noRoom.Load() {
		q.mu.Unlock()
		return false
	}
	q.handled++
	q.drop(time.Now())
	q.mu.Unlock()
	q.signal()
	return true
}

// drop counts a dropped record. Drops after Close are counted but not
// reported: no drop report follows the last.
func (q *queue) drop(now time.Time) {
	q.dropped++
	if q.closed {
		return
	}
	if q.unreported == 0 {
		q.stretch = now
	}
	q.unreported++
	q.lastDrop = now
}

// signal wakes the publisher, without waiting.
func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// madeRoom wakes the Handle calls waiting for room; q.mu is held.
func (q *queue) madeRoom() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
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
	m := message{body: e.body, records: 1, report: e.report, time: e.time, level: e.level, key: e.key, durations: e.durations}
	if !e.report {
		m.bytes = cap(*e.body)
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
// body holds them one per line (NDJSON). A drop report travels alone, so
// that no report is ever taken for a record. The body is allocated to fit:
// a reused buffer would hold more memory than the limits count.
func (q *queue) takeBatch(maxRecords, maxBytes int) (message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending.len() == 0 {
		return message{}, false
	}
	first := q.pending.at(0)
	if first.report {
		e := q.pending.pop()
		return message{body: e.body, report: true, records: 1, time: e.time, level: e.level, key: e.key}, true
	}
	n, size := 0, 0
	for n < q.pending.len() && n < maxRecords {
		e := q.pending.at(n)
		if e.report || n > 0 && (e.key != first.key || wire.BatchSize(n+1, size+len(*e.body)) >= maxBytes) {
			break
		}
		size += len(*e.body)
		n++
	}
	body := getBody(wire.BatchSize(n, size))
	m := message{body: body, batch: true, records: n, time: first.time, level: first.level, key: first.key}
	for i := range n {
		e := q.pending.pop()
		*body = wire.AppendRecord(*body, i, *e.body)
		q.pendBytes -= cap(*e.body)
		q.bytes -= cap(*e.body)
		freeBody(e.body)
	}
	m.bytes = cap(*body)
	q.bytes += m.bytes
	q.updateFull()
	return m, true
}

// release frees a message once confirmed or given up, making room.
func (q *queue) release(m message) {
	q.mu.Lock()
	if m.report {
		q.reports--
	} else {
		q.records -= m.records
		q.bytes -= m.bytes
	}
	q.updateFull()
	q.madeRoom()
	q.mu.Unlock()
	freeBody(m.body)
}

// dropsToReport returns the drops to tell in a drop report and marks them
// told, once the stretch of drops is over: no drop for reportQuiet, or
// the stretch has lasted reportEvery, or now is the end. Otherwise it
// returns 0 and when to ask again (zero when there is nothing to tell).
func (q *queue) dropsToReport(now time.Time, final bool) (n uint64, askAt time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.unreported == 0 {
		return 0, time.Time{}
	}
	at := q.lastDrop.Add(reportQuiet)
	if long := q.stretch.Add(reportEvery); long.Before(at) {
		at = long
	}
	if !final && now.Before(at) {
		return 0, at
	}
	n, q.unreported = q.unreported, 0
	return n, time.Time{}
}

func (q *queue) unreportedDrops() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unreported
}

// A stretch of drops ends after reportQuiet without a drop; a stretch that
// goes on is reported every reportEvery.
const (
	reportQuiet = time.Second
	reportEvery = time.Minute
)

// putReport queues a drop report. It bypasses the limits: there is at most
// one per stretch of drops, and it is small.
func (q *queue) putReport(body []byte, e entry) {
	b := getBody(len(body))
	*b = append(*b, body...)
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

// close makes every later put drop, and wakes the puts that wait.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.updateFull()
	q.madeRoom()
}

// counts returns the handled, dropped and buffered records.
func (q *queue) counts() (handled, dropped uint64, buffered int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.handled, q.dropped, q.records
}
