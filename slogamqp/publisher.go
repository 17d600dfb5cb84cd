package slogamqp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/wire"
)

// Header names set on every message, as package wire defines them. A
// consumer detects gaps and duplicates from HeaderProducer and HeaderSeq:
// each producer numbers the records it publishes 1, 2, 3, … and a resent
// message keeps its number and its message id.
const (
	HeaderLevel    = wire.HeaderLevel
	HeaderProducer = wire.HeaderProducer
	HeaderSeq      = wire.HeaderSeq     // of the message's first record
	HeaderRecords  = wire.HeaderRecords // in batch mode: how many records the message holds
	// HeaderWindow is how far back, in seq, this producer may resend a
	// message: a consumer that remembers that many seqs per producer never
	// writes a record twice.
	HeaderWindow = wire.HeaderWindow
)

// Content types of message bodies.
const (
	ContentTypeJSON   = wire.ContentTypeJSON   // one record
	ContentTypeNDJSON = wire.ContentTypeNDJSON // a batch: one record per line
)

// maxNackRetries is how many times a message that the broker nacked (a
// full queue with x-overflow reject-publish, say) is sent again before
// its records count as undelivered.
const maxNackRetries = 3

// publisher is the one goroutine that talks to the broker. It owns the
// records it has taken from the queue until the broker confirms them, and
// the shutdown that accounts for every record it could not deliver.
type publisher struct {
	opts     *Options
	q        *queue
	exchange amqpconn.Exchange
	producer string
	window   uint64     // how far back a resend may reach: HeaderWindow
	headers  amqp.Table // reused: Publish serializes it before returning

	unconfirmed ring[message] // taken from q, oldest first; the first sent were sent on this channel
	sent        int           // how many of unconfirmed were sent on the current channel
	retries     []message     // nacked, waiting for their due time
	seq         uint64        // last sequence number given out
	sessions    int
	draining    bool
	lingerUntil time.Time // in batch mode, when a partial batch goes
	alarm       alarm

	ctx    context.Context
	cancel context.CancelFunc
	drain  chan struct{} // closed by shutdown: send what is held, then stop
	done   chan struct{} // closed when run returns

	broker      atomic.Pointer[string] // the broker connected to, or nil
	failovers   atomic.Uint64
	published   atomic.Uint64
	confirmed   atomic.Uint64
	resent      atomic.Uint64
	nacked      atomic.Uint64
	undelivered atomic.Uint64
	reconnects  atomic.Uint64
	dropReports atomic.Uint64
	errMu       sync.Mutex
	lastErr     error
}

func newPublisher(opts *Options, q *queue) *publisher {
	var id [8]byte
	rand.Read(id[:])
	p := &publisher{
		opts:     opts,
		q:        q,
		exchange: opts.endpoint().ExchangeDecl(),
		producer: hex.EncodeToString(id[:]),
		// Unconfirmed records are within the buffer, and drop reports
		// within the in-flight window.
		window:  uint64(opts.BufferRecords + opts.MaxInFlight),
		headers: amqp.Table{},
		drain:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

func (p *publisher) run() {
	defer close(p.done)
	defer p.cancel()
	defer p.alarm.stop()
	loop := p.opts.endpoint().Loop()
	loop.Session, loop.Report, loop.Finished, loop.Wake = p.session, p.fail, p.finished, p.drain
	loop.Run(p.ctx)
}

func (p *publisher) fail(err error, retryIn time.Duration) {
	p.errMu.Lock()
	p.lastErr = err
	p.errMu.Unlock()
	p.opts.OnError(err, retryIn)
}

// finished reports whether shutdown asked the publisher to stop and
// everything it held is delivered or given up.
func (p *publisher) finished() bool {
	if !p.draining {
		select {
		case <-p.drain:
			p.draining = true
		default:
			return false
		}
	}
	return p.unconfirmed.len() == 0 && len(p.retries) == 0 && p.q.idle() && p.q.unreportedDrops() == 0
}

func (p *publisher) session(ctx context.Context, conn *amqpconn.Conn, ready func()) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := p.exchange.Declare(ch); err != nil {
		return err
	}
	confirm := !p.opts.DisableConfirms
	var confirms chan amqp.Confirmation
	if confirm {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		// Room for every confirm in flight, so that amqp091's reader never
		// waits on us (it drops what waits too long).
		confirms = ch.NotifyPublish(make(chan amqp.Confirmation, p.opts.MaxInFlight))
	}
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	blocking := conn.WatchBlocked()

	ready()
	if p.sessions++; p.sessions > 1 {
		p.reconnects.Add(1)
	}
	if conn.Failover {
		p.failovers.Add(1)
	}
	p.broker.Store(&conn.Broker)
	defer p.broker.Store(nil)
	p.sent = 0
	blocked := false

	for {
		if !blocked {
			if err := p.publishAll(ch, confirm); err != nil {
				return closeReason(chClosed, connClosed, err)
			}
		}
		if p.finished() {
			return amqpconn.ErrDone
		}
		select {
		case <-p.q.wake:
		case <-p.alarm.c:
			p.alarm.fired()
		case <-p.drainSignal():
			p.draining = true
		case c, ok := <-confirms:
			if !ok {
				return closedError(chClosed, connClosed)
			}
			p.confirmOldest(c.Ack)
		case <-blocking.C:
			active, reason := blocking.State()
			if active && !blocked {
				p.fail(fmt.Errorf("connection blocked by the broker (%s): buffering", reason), 0)
			}
			blocked = active
		case err := <-connClosed:
			return closedError(chClosed, connClosed, err)
		case err := <-chClosed:
			return closedError(chClosed, connClosed, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// drainSignal returns the drain channel until the publisher has seen it.
func (p *publisher) drainSignal() <-chan struct{} {
	if p.draining {
		return nil
	}
	return p.drain
}

// publishAll sends what is unsent, first the messages left unconfirmed by
// a lost channel, then nacked ones that are due, then new ones, while the
// window has room.
func (p *publisher) publishAll(ch *amqp.Channel, confirm bool) error {
	for p.sent < p.opts.MaxInFlight {
		if p.sent == p.unconfirmed.len() {
			m, ok := p.nextMessage()
			if !ok {
				return nil
			}
			p.unconfirmed.push(m)
		}
		m := p.unconfirmed.at(p.sent)
		if err := p.publish(ch, m); err != nil {
			return err
		}
		n := uint64(m.records)
		switch {
		case m.report:
		case m.sent:
			p.resent.Add(n)
		default:
			p.published.Add(n)
		}
		m.sent = true
		p.sent++
		if !confirm {
			p.confirmOldest(true)
		}
	}
	return nil
}

// nextMessage returns a nacked message that is due, else a new one from
// the queue, numbered, else a drop report when one is due.
func (p *publisher) nextMessage() (message, bool) {
	if m, ok := p.dueRetry(time.Now()); ok {
		return m, true
	}
	m, ok := p.next()
	if !ok && p.reportDrops() {
		m, ok = p.next()
	}
	if ok {
		m.seq = p.seq + 1
		p.seq += uint64(m.records)
	}
	return m, ok
}

// next takes the next message from the queue. In batch mode, a batch
// that is not full waits up to Linger for more records, unless the
// handler is closing.
func (p *publisher) next() (message, bool) {
	b := p.opts.Batch
	if b == nil {
		return p.q.take()
	}
	if !p.q.full(b.MaxRecords, b.MaxBytes) && !p.draining {
		now := time.Now()
		if p.lingerUntil.IsZero() {
			if p.q.idle() {
				return message{}, false
			}
			p.lingerUntil = now.Add(b.Linger)
		}
		if now.Before(p.lingerUntil) {
			p.alarm.set(p.lingerUntil)
			return message{}, false
		}
	}
	m, ok := p.q.takeBatch(b.MaxRecords, b.MaxBytes)
	if !ok || m.records < b.MaxRecords {
		p.lingerUntil = time.Time{} // pending is spent: the next batch waits again
	}
	return m, ok
}

// dueRetry returns the first nacked message whose wait is over, giving up
// on those that a consumer could no longer tell from new records.
func (p *publisher) dueRetry(now time.Time) (message, bool) {
	for i := 0; i < len(p.retries); i++ {
		m := p.retries[i]
		if m.due.After(now) {
			p.alarm.set(m.due)
			continue
		}
		p.retries = append(p.retries[:i], p.retries[i+1:]...)
		if p.seq-m.seq >= p.window {
			p.giveUp(context.Background(), m)
			i--
			continue
		}
		return m, true
	}
	return message{}, false
}

func (p *publisher) publish(ch *amqp.Channel, m *message) error {
	meta := wire.Meta{Level: m.level.String(), Producer: p.producer, Seq: m.seq, Window: p.window}
	if p.opts.Batch != nil {
		meta.Records = m.records
	} else {
		meta.Durations = m.durations
	}
	meta.SetHeaders(p.headers)
	mode := amqp.Transient
	if p.opts.Persistent {
		mode = amqp.Persistent
	}
	return ch.Publish(p.opts.Exchange, m.key, false, false, amqp.Publishing{
		Headers:      p.headers,
		ContentType:  meta.ContentType(),
		DeliveryMode: mode,
		MessageId:    wire.MessageID(p.producer, m.seq),
		Timestamp:    m.time,
		AppId:        p.opts.AppID,
		Body:         *m.body,
	})
}

// confirmOldest settles the oldest message sent: released when acked;
// when nacked, sent again after a backoff, up to maxNackRetries times.
// A nack leaves the session and every other message alone.
func (p *publisher) confirmOldest(ack bool) {
	m := p.unconfirmed.pop()
	p.sent--
	if ack {
		if m.report {
			p.dropReports.Add(1)
		} else {
			p.confirmed.Add(uint64(m.records))
		}
		p.q.release(m)
		return
	}
	p.nacked.Add(1)
	if m.nacks++; m.nacks > maxNackRetries {
		p.giveUp(context.Background(), m)
		return
	}
	m.due = time.Now().Add(min(p.opts.MinBackoff<<(m.nacks-1), p.opts.MaxBackoff))
	p.retries = append(p.retries, m)
	p.alarm.set(m.due)
}

// giveUp counts the records of m as undelivered, hands them to the
// fallback handler and releases m.
func (p *publisher) giveUp(ctx context.Context, m message) {
	if !m.report {
		p.undelivered.Add(uint64(m.records))
		if fb := p.opts.Fallback; fb != nil {
			if m.batch {
				for line := range bytes.SplitSeq(*m.body, []byte("\n")) {
					fallback(ctx, fb, line, nil)
				}
			} else {
				fallback(ctx, fb, *m.body, &entry{time: m.time, level: m.level})
			}
		}
	}
	p.q.release(m)
}

// reportDrops queues one record telling how many records were dropped in
// the stretch of drops that is over, and reports whether it did. Closing
// ends every stretch.
func (p *publisher) reportDrops() bool {
	n, askAt := p.q.dropsToReport(time.Now(), p.draining)
	if n == 0 {
		if !askAt.IsZero() {
			p.alarm.set(askAt)
		}
		return false
	}
	var buf bytes.Buffer
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "slogamqp: records dropped", 0)
	r.AddAttrs(slog.Uint64("dropped", n))
	slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: p.opts.ReplaceAttr}).Handle(context.Background(), r)
	e := entry{time: r.Time, level: r.Level}
	if p.opts.RoutingKey != nil {
		e.key = p.opts.RoutingKey(r)
	}
	p.q.putReport(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), e)
	return true
}

// shutdown stops the queue, lets the publisher send what it holds until
// it is done or ctx is, then gives up on what is left. It returns nil
// only when every record given to Handle was delivered.
func (p *publisher) shutdown(ctx context.Context) error {
	p.q.close()
	close(p.drain)
	select {
	case <-p.done:
	case <-ctx.Done():
		p.cancel()
		<-p.done
	}
	for {
		m, ok := p.q.take()
		if !ok {
			break
		}
		p.giveUp(ctx, m)
	}
	for p.unconfirmed.len() > 0 {
		p.giveUp(ctx, p.unconfirmed.pop())
	}
	for _, m := range p.retries {
		p.giveUp(ctx, m)
	}
	p.retries = nil
	handled, dropped, _ := p.q.counts()
	e := &DeliveryError{Handled: handled, Dropped: dropped, Undelivered: p.undelivered.Load(), Cause: ctx.Err()}
	p.errMu.Lock()
	e.LastError = p.lastErr
	p.errMu.Unlock()
	if e.Dropped == 0 && e.Undelivered == 0 {
		return nil
	}
	return e
}

// alarm is the publisher's one timer, set to the earliest of its
// deadlines: a partial batch's linger, the end of a stretch of drops, a
// nacked message's retry. When it fires, the publisher looks at them all.
type alarm struct {
	t  *time.Timer
	at time.Time
	c  <-chan time.Time // nil while not set
}

func (a *alarm) set(at time.Time) {
	if a.c != nil && !at.Before(a.at) {
		return
	}
	d := time.Until(at)
	if a.t == nil {
		a.t = time.NewTimer(d)
	} else {
		a.t.Reset(d)
	}
	a.at, a.c = at, a.t.C
}

func (a *alarm) fired() { a.c = nil }

func (a *alarm) stop() {
	if a.t != nil {
		a.t.Stop()
	}
}

// closeReason returns why the broker closed the channel or connection
// that made a publish fail with err (a 404 for a deleted exchange, say),
// rather than amqp091's "channel/connection is not open". The reason
// arrives with the close, just after the failed publish.
func closeReason(chClosed, connClosed <-chan *amqp.Error, err error) error {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case reason := <-chClosed:
		if reason != nil {
			return reason
		}
	case reason := <-connClosed:
		if reason != nil {
			return reason
		}
	case <-t.C:
	}
	return err
}

// closedError returns the first error that the channel or the connection
// was closed with; amqp091 closes the channels without one on a clean
// close.
func closedError(chClosed, connClosed <-chan *amqp.Error, seen ...*amqp.Error) error {
	for _, err := range seen {
		if err != nil {
			return err
		}
	}
	for _, c := range []<-chan *amqp.Error{chClosed, connClosed} {
		select {
		case err := <-c:
			if err != nil {
				return err
			}
		default:
		}
	}
	return errors.New("channel closed")
}
