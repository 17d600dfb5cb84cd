package slogamqp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/amqpconn"
)

// Header names set on every message. A consumer detects gaps and
// duplicates from HeaderProducer and HeaderSeq: each producer numbers the
// messages it publishes 1, 2, 3, … and a resent message keeps its number
// and its message id.
const (
	HeaderLevel    = "level"
	HeaderProducer = "producer"
	HeaderSeq      = "seq"     // of the message's first record
	HeaderRecords  = "records" // in batch mode: how many records the message holds
)

// Content types of message bodies.
const (
	ContentTypeJSON   = "application/json"     // one record
	ContentTypeNDJSON = "application/x-ndjson" // a batch: one record per line
)

// publisher is the one goroutine that talks to the broker. It owns the
// records it has taken from the queue until the broker confirms them.
type publisher struct {
	opts     *Options
	q        *queue
	exchange amqpconn.Exchange
	producer string
	headers  amqp.Table // reused: Publish serializes it before returning

	unconfirmed ring[message] // taken from q, oldest first; the first sent were sent on this channel
	sent        int           // how many of unconfirmed were sent on the current channel
	seq         uint64        // last sequence number given out
	sessions    int
	draining    bool

	// In batch mode, a partial batch waits up to Linger for more records.
	linger      *time.Timer
	lingering   bool // linger is running
	lingerSpent bool // linger fired: send what is pending

	ctx    context.Context
	cancel context.CancelFunc
	drain  chan struct{} // closed by Close: send what is held, then stop
	done   chan struct{} // closed when run returns

	connected   atomic.Bool
	published   atomic.Uint64
	confirmed   atomic.Uint64
	resent      atomic.Uint64
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
		exchange: amqpconn.Exchange{Name: opts.Exchange, Kind: opts.ExchangeKind, Durable: opts.Durable},
		producer: hex.EncodeToString(id[:]),
		headers:  amqp.Table{},
		drain:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if opts.Batch != nil {
		p.linger = time.NewTimer(time.Hour)
		p.linger.Stop()
	}
	return p
}

func (p *publisher) run() {
	defer close(p.done)
	defer p.cancel()
	backoff := amqpconn.Backoff{Initial: p.opts.MinBackoff, Max: p.opts.MaxBackoff}
	amqpconn.Run(p.ctx, p.opts.conn(), backoff, p.session, p.fail)
}

func (p *publisher) fail(err error, retryIn time.Duration) {
	p.errMu.Lock()
	p.lastErr = err
	p.errMu.Unlock()
	p.opts.OnError(err, retryIn)
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
		// blocks on us.
		confirms = ch.NotifyPublish(make(chan amqp.Confirmation, p.opts.MaxInFlight))
	}
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	blockings := conn.NotifyBlocked(make(chan amqp.Blocking, 4))

	ready()
	if p.sessions++; p.sessions > 1 {
		p.reconnects.Add(1)
	}
	p.connected.Store(true)
	defer p.connected.Store(false)
	p.sent = 0
	blocked := false

	for {
		if !blocked {
			if err := p.publishAll(ch, confirm); err != nil {
				return err
			}
		}
		if p.draining && p.unconfirmed.len() == 0 && p.q.idle() {
			return amqpconn.ErrDone
		}
		select {
		case <-p.q.wake:
		case <-p.lingerC():
			p.lingering, p.lingerSpent = false, true
		case <-p.drainSignal():
			p.draining = true
		case c, ok := <-confirms:
			if !ok {
				return closedError(chClosed, connClosed)
			}
			if !c.Ack {
				// Rare (an internal broker error): resending everything
				// unconfirmed on a new channel keeps the order simple.
				return errors.New("broker nacked a message")
			}
			p.confirmOldest()
		case b := <-blockings:
			blocked = b.Active
			if blocked {
				p.fail(fmt.Errorf("connection blocked by the broker (%s): buffering", b.Reason), 0)
			}
		case err := <-connClosed:
			return closedError(chClosed, connClosed, err)
		case err := <-chClosed:
			return closedError(chClosed, connClosed, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *publisher) lingerC() <-chan time.Time {
	if !p.lingering {
		return nil
	}
	return p.linger.C
}

// drainSignal returns the drain channel until the publisher has seen it.
func (p *publisher) drainSignal() <-chan struct{} {
	if p.draining {
		return nil
	}
	return p.drain
}

// publishAll sends what is unsent, first the messages left unconfirmed by
// a lost channel, then new ones, while the window has room.
func (p *publisher) publishAll(ch *amqp.Channel, confirm bool) error {
	for p.sent < p.opts.MaxInFlight {
		fresh := p.sent == p.unconfirmed.len()
		if fresh {
			m, ok := p.next()
			if !ok {
				if !p.reportDrops() {
					return nil
				}
				continue
			}
			m.seq = p.seq + 1
			p.seq += uint64(m.records)
			p.unconfirmed.push(m)
		}
		m := p.unconfirmed.at(p.sent)
		if err := p.publish(ch, m); err != nil {
			return err
		}
		if m.sent {
			p.resent.Add(uint64(m.records - m.reports))
		} else {
			p.published.Add(uint64(m.records - m.reports))
			m.sent = true
		}
		p.sent++
		if !confirm {
			p.confirmOldest()
		}
	}
	return nil
}

// next takes the next message from the queue. In batch mode, a batch
// that is not full waits up to Linger for more records, unless the
// handler is closing.
func (p *publisher) next() (message, bool) {
	b := p.opts.Batch
	if b == nil {
		return p.q.take()
	}
	if !p.q.full(b.MaxRecords, b.MaxBytes) && !p.lingerSpent && !p.draining {
		if !p.lingering && !p.q.idle() {
			p.linger.Reset(b.Linger)
			p.lingering = true
		}
		return message{}, false
	}
	m, ok := p.q.takeBatch(b.MaxRecords, b.MaxBytes)
	if !ok || m.records < b.MaxRecords {
		p.lingerSpent = false // pending is spent: the next batch waits again
	}
	return m, ok
}

func (p *publisher) publish(ch *amqp.Channel, m *message) error {
	p.headers[HeaderLevel] = m.level.String()
	p.headers[HeaderProducer] = p.producer
	p.headers[HeaderSeq] = int64(m.seq)
	contentType := ContentTypeJSON
	if p.opts.Batch != nil {
		contentType = ContentTypeNDJSON
		p.headers[HeaderRecords] = int64(m.records)
	}
	mode := amqp.Transient
	if p.opts.Persistent {
		mode = amqp.Persistent
	}
	return ch.Publish(p.opts.Exchange, m.key, false, false, amqp.Publishing{
		Headers:      p.headers,
		ContentType:  contentType,
		DeliveryMode: mode,
		MessageId:    p.producer + "-" + strconv.FormatUint(m.seq, 10),
		Timestamp:    m.time,
		AppId:        p.opts.AppID,
		Body:         *m.body,
	})
}

func (p *publisher) confirmOldest() {
	m := p.unconfirmed.pop()
	p.sent--
	p.dropReports.Add(uint64(m.reports))
	p.confirmed.Add(uint64(m.records - m.reports))
	p.q.release(m)
}

// reportDrops queues one record telling how many records were dropped
// since the last such record, and reports whether it did.
func (p *publisher) reportDrops() bool {
	if p.draining {
		return false
	}
	n := p.q.takeUnreported()
	if n == 0 {
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
