// Package slogamqp is a log/slog Handler that publishes every record as one
// AMQP message to an exchange of a RabbitMQ broker, "logs" (fanout) by
// default, where any number of consumers each receive a copy.
//
// The body of each message is the JSON object that slog.JSONHandler writes
// for the same record, without the trailing newline. Handle never waits on
// the network: it encodes the record and puts the bytes in a bounded buffer
// that one background goroutine publishes, with publisher confirms,
// reconnecting with jittered exponential backoff whenever the broker goes
// away. When the buffer is full, records are dropped and counted, and a
// record telling how many follows once the publisher catches up.
package slogamqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/logrecord"
)

// Handler is a slog.Handler that publishes to RabbitMQ. Create it with New
// and Close it when done; it is safe for concurrent use, and so are the
// handlers that WithAttrs and WithGroup return, which share its buffer and
// connection.
type Handler struct {
	s *shared
	f *format // with what WithAttrs and WithGroup said, pre-formatted
}

// shared is what a Handler and all its clones have in common.
type shared struct {
	opts      Options
	q         *queue
	p         *publisher
	closeOnce sync.Once
	closeErr  error
}

// New returns a Handler and starts its publisher. It returns at once, even
// when no broker is reachable, and fails only when opts is invalid.
func New(opts *Options) (*Handler, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &shared{opts: o}
	s.q = newQueue(&s.opts)
	s.p = newPublisher(&s.opts, s.q)
	go s.p.run()
	return &Handler{s: s, f: newFormat(o.AddSource, o.ReplaceAttr)}, nil
}

// String describes the handler without its credentials.
func (h *Handler) String() string {
	return fmt.Sprintf("slogamqp.Handler(%s exchange=%q kind=%s)", amqpconn.Redact(h.s.opts.URL), h.s.opts.Exchange, h.s.opts.ExchangeKind)
}

// Enabled reports whether level is at least Options.Level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.s.opts.Level.Level()
}

// Handle encodes r and buffers it for publishing. It never waits on the
// network and never retains r. A record that does not fit in the buffer is
// dropped, counted and passed to Options.Fallback, at once or, with
// Overflow Block, once Options.BlockTimeout has passed or ctx is done;
// Handle still returns nil, since a caller of slog cannot act on it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// A full buffer drops the newest record anyway: drop it before paying
	// for its encoding (a fallback needs the encoding, so not with one).
	if h.s.opts.Overflow == DropNewest && h.s.opts.Fallback == nil && h.s.q.dropIfFull() {
		return nil
	}
	sc := scratches.Get().(*scratch)
	var fromCtx []slog.Attr
	if h.s.opts.ContextAttrs != nil {
		fromCtx = h.s.opts.ContextAttrs(ctx)
	}
	sc.durs = sc.durs[:0]
	sc.buf = h.f.encode(sc.buf[:0], r, fromCtx, &sc.durs)
	e := entry{time: r.Time, level: r.Level, durations: h.f.durations(sc.durs)}
	if h.s.opts.RoutingKey != nil {
		e.key = h.s.opts.RoutingKey(r)
	}
	h.s.put(ctx, sc, e)
	if cap(sc.buf) <= maxScratch { // let rare huge records go
		scratches.Put(sc)
	}
	return nil
}

// WithAttrs returns a handler whose records carry attrs, formatted once
// here (LogValuers resolved) rather than in every Handle.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return &Handler{s: h.s, f: h.f.withAttrs(attrs)}
}

// WithGroup returns a handler that puts the attributes of later records
// and WithAttrs calls in the group name. An empty name is ignored.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{s: h.s, f: h.f.withGroup(name)}
}

// scratch is one Handle's encoding buffer and the records DropOldest
// evicted for it, pooled so that Handle allocates nothing.
type scratch struct {
	buf     []byte
	durs    []byte // keys of the record's durations
	evicted []entry
}

var scratches = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 1024)} }}

// maxScratch is the largest scratch buffer kept for the next record.
const maxScratch = 64 << 10

// put buffers the record encoded in sc, and hands what overflow drops to
// the fallback handler.
func (s *shared) put(ctx context.Context, sc *scratch, e entry) {
	fb := s.opts.Fallback
	var evicted *[]entry
	if fb != nil {
		evicted = &sc.evicted
	}
	if !s.q.put(ctx, sc.buf, e, evicted) && fb != nil {
		fallback(ctx, fb, sc.buf, &e)
	}
	for i, old := range sc.evicted {
		fallback(ctx, fb, *old.body, &old)
		freeBody(old.body)
		sc.evicted[i] = entry{}
	}
	sc.evicted = sc.evicted[:0]
}

// fallback hands a record that will not reach the broker to fb, decoded
// from its JSON body. e, when known, holds the record's exact time and
// level, which ReplaceAttr may have hidden in the body.
func fallback(ctx context.Context, fb slog.Handler, body []byte, e *entry) {
	r, err := logrecord.Parse(body)
	if err != nil {
		r = slog.NewRecord(time.Time{}, slog.LevelInfo, string(body), 0)
	}
	if e != nil {
		r.Time, r.Level = e.time, e.level
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if fb.Enabled(ctx, r.Level) {
		fb.Handle(ctx, r)
	}
}

// ErrUndelivered matches, with errors.Is, the error Close returns when
// records were accepted into the buffer and never confirmed: still held
// when Close gave up, or nacked by the broker past every retry.
var ErrUndelivered = errors.New("slogamqp: records not delivered")

// ErrDropped matches, with errors.Is, the error Close returns when records
// were dropped: the buffer was full, or they were logged after Close.
var ErrDropped = errors.New("slogamqp: records dropped")

// DeliveryError is what Close returns when not every record given to
// Handle was delivered. It matches ErrDropped when Dropped > 0 and
// ErrUndelivered when Undelivered > 0; Handled - Dropped - Undelivered
// records were confirmed (sent, with confirms off).
type DeliveryError struct {
	Handled     uint64 // records given to Handle
	Dropped     uint64 // of them, dropped (buffer full, or after Close)
	Undelivered uint64 // of them, accepted and never confirmed
	Cause       error  // why Close stopped waiting: ctx's error, or nil
	LastError   error  // the last connection failure or refusal, or nil
}

func (e *DeliveryError) Error() string {
	msg := fmt.Sprintf("slogamqp: %d of %d records not delivered: %d dropped, %d unconfirmed",
		e.Dropped+e.Undelivered, e.Handled, e.Dropped, e.Undelivered)
	if e.Cause != nil {
		msg += " (" + e.Cause.Error() + ")"
	}
	if e.LastError != nil {
		msg += "; last broker error: " + e.LastError.Error()
	}
	return msg
}

// Is matches ErrDropped and ErrUndelivered by the counts.
func (e *DeliveryError) Is(target error) bool {
	return target == ErrDropped && e.Dropped > 0 || target == ErrUndelivered && e.Undelivered > 0
}

// Unwrap returns Cause.
func (e *DeliveryError) Unwrap() error { return e.Cause }

// Close stops accepting records (later ones are dropped and counted, never
// a panic), publishes what is buffered, and a last drop report if records
// were dropped, and waits for the broker's confirms until ctx is done, then
// closes the connection with the AMQP handshake. Records it could not
// deliver go to Options.Fallback. It returns nil only when every record
// given to Handle so far was delivered, else a *DeliveryError that counts
// the dropped and the undelivered. Close returns by ctx's deadline.
// Calling it again returns the first call's result.
func (h *Handler) Close(ctx context.Context) error {
	s := h.s
	s.closeOnce.Do(func() { s.closeErr = s.p.shutdown(ctx) })
	return s.closeErr
}

// Stats are the handler's counters. Whenever the handler is idle, and
// after Close, Handled == Confirmed + Dropped + Undelivered + Buffered;
// while a record is being settled it may count on both sides for an
// instant.
type Stats struct {
	Handled     uint64 // records given to Handle
	Published   uint64 // records sent to the broker, each counted once
	Confirmed   uint64 // records the broker confirmed; with confirms off, records sent
	Dropped     uint64 // records dropped because the buffer was full or the handler closed
	Resent      uint64 // sends of records left unconfirmed by a lost connection, or nacked
	Nacked      uint64 // nacks from the broker (each message is retried up to 3 times)
	Buffered    uint64 // records held now, waiting to be sent or confirmed
	Undelivered uint64 // records given up: nacked past every retry, or held when Close gave up
	DropReports uint64 // "records dropped" records published
	Reconnects  uint64 // connections made after the first
	Failovers   uint64 // connections made to another broker than the one before
	Connected   bool   // whether a channel to the broker is open now
	Broker      string // the broker connected to now, its password hidden, or ""
	LastError   error  // the last connection failure or refusal, or nil
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	p := h.s.p
	handled, dropped, buffered := h.s.q.counts()
	p.errMu.Lock()
	lastErr := p.lastErr
	p.errMu.Unlock()
	broker := p.broker.Load()
	return Stats{
		Handled:     handled,
		Published:   p.published.Load(),
		Confirmed:   p.confirmed.Load(),
		Dropped:     dropped,
		Resent:      p.resent.Load(),
		Nacked:      p.nacked.Load(),
		Buffered:    uint64(buffered),
		DropReports: p.dropReports.Load(),
		Reconnects:  p.reconnects.Load(),
		Failovers:   p.failovers.Load(),
		Connected:   broker != nil,
		Broker:      deref(broker),
		LastError:   lastErr,
		Undelivered: p.undelivered.Load(),
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

var _ slog.Handler = (*Handler)(nil)
