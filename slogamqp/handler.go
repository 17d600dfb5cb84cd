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
	s     *shared
	chain []step    // WithGroup and WithAttrs calls since New, in order
	encs  sync.Pool // *encoder, each with chain applied
}

// step is one WithGroup (group != "") or WithAttrs call.
type step struct {
	group string
	attrs []slog.Attr
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
	return &Handler{s: s}, nil
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
	e := h.encoder()
	e.ctx, e.rec = ctx, entry{time: r.Time, level: r.Level}
	if h.s.opts.RoutingKey != nil {
		e.rec.key = h.s.opts.RoutingKey(r)
	}
	err := e.h.Handle(ctx, r)
	e.ctx, e.rec = nil, entry{}
	h.encs.Put(e)
	return err
}

// WithAttrs returns a handler whose records carry attrs. LogValuers are
// resolved here; the attributes are formatted once per pooled encoder (one
// for each goroutine that logs at once), never per Handle.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(step{attrs: resolve(attrs)})
}

// WithGroup returns a handler that puts the attributes of later records
// and WithAttrs calls in the group name. An empty name is ignored.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(step{group: name})
}

func (h *Handler) with(s step) *Handler {
	h2 := &Handler{s: h.s, chain: append(h.chain[:len(h.chain):len(h.chain)], s)}
	h2.encs.Put(h2.newEncoder())
	return h2
}

// resolve resolves LogValuers now, as slog.JSONHandler's WithAttrs does, so
// that every encoder built later from the same attrs agrees.
func resolve(attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		a.Value = a.Value.Resolve()
		if a.Value.Kind() == slog.KindGroup {
			a.Value = slog.GroupValue(resolve(a.Value.Group())...)
		}
		out[i] = a
	}
	return out
}

// encoder is a slog.JSONHandler that writes into the buffer. Delegating the
// encoding keeps the body byte for byte what slog.JSONHandler writes. A
// JSONHandler writes to one io.Writer, so each goroutine borrows its own
// encoder from the pool for the length of one Handle, and the record's
// metadata rides along in it.
type encoder struct {
	s       *shared
	h       slog.Handler
	ctx     context.Context
	rec     entry
	evicted []entry
}

func (h *Handler) encoder() *encoder {
	if e, ok := h.encs.Get().(*encoder); ok {
		return e
	}
	return h.newEncoder()
}

func (h *Handler) newEncoder() *encoder {
	e := &encoder{s: h.s}
	var jh slog.Handler = slog.NewJSONHandler(e, &slog.HandlerOptions{
		AddSource:   h.s.opts.AddSource,
		ReplaceAttr: h.s.opts.ReplaceAttr,
	})
	for _, s := range h.chain {
		if s.group != "" {
			jh = jh.WithGroup(s.group)
		} else {
			jh = jh.WithAttrs(s.attrs)
		}
	}
	e.h = jh
	return e
}

// Write receives the one write that slog.JSONHandler makes per record.
func (e *encoder) Write(p []byte) (int, error) {
	body := p
	if n := len(body); n > 0 && body[n-1] == '\n' {
		body = body[:n-1]
	}
	fb := e.s.opts.Fallback
	var evicted *[]entry
	if fb != nil {
		evicted = &e.evicted
	}
	ctx := e.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if !e.s.q.put(ctx, body, e.rec, evicted) && fb != nil {
		fallback(e.ctx, fb, body, &e.rec)
	}
	for i, old := range e.evicted {
		fallback(e.ctx, fb, *old.body, &old)
		freeBody(old.body)
		e.evicted[i] = entry{}
	}
	e.evicted = e.evicted[:0]
	return len(p), nil
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

// Stats are the handler's counters. At every moment,
// Handled == Confirmed + Dropped + Undelivered + Buffered.
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
	Connected   bool   // whether a channel to the broker is open now
	LastError   error  // the last connection failure or refusal, or nil
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	p := h.s.p
	handled, dropped, buffered := h.s.q.counts()
	p.errMu.Lock()
	lastErr := p.lastErr
	p.errMu.Unlock()
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
		Connected:   p.connected.Load(),
		LastError:   lastErr,
		Undelivered: p.undelivered.Load(),
	}
}

var _ slog.Handler = (*Handler)(nil)
