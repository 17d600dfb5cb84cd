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
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	undeliv   atomic.Int64
}

// New returns a Handler and starts its publisher. It returns at once, even
// when no broker is reachable, and fails only when opts is invalid.
func New(opts *Options) (*Handler, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &shared{opts: o}
	s.q = newQueue(o.BufferRecords, o.BufferBytes, o.Overflow)
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
// dropped, counted and passed to Options.Fallback; Handle still returns nil,
// since a caller of slog cannot act on it.
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

// WithAttrs returns a handler whose records carry attrs, formatted once
// here rather than in every Handle.
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
	if !e.s.q.put(body, e.rec, evicted) && fb != nil {
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

// ErrUndelivered is wrapped by the error Close returns when records could
// not be delivered.
var ErrUndelivered = errors.New("slogamqp: records not delivered")

// Close stops accepting records (later ones are dropped and counted, never
// a panic), publishes what is buffered and waits for the broker's confirms
// until ctx is done, then closes the connection. Records it could not
// deliver go to Options.Fallback, and the returned error, which wraps
// ErrUndelivered, says how many. Close returns by ctx's deadline. Calling it
// again returns the first call's result.
func (h *Handler) Close(ctx context.Context) error {
	s := h.s
	s.closeOnce.Do(func() {
		if s.q.close() {
			s.p.cancel()
		} else {
			close(s.p.drain)
		}
		select {
		case <-s.p.done:
		case <-ctx.Done():
			s.p.cancel()
			<-s.p.done
		}
		for _, e := range s.q.drain() {
			if !e.report {
				s.undelivered(ctx, *e.body, &e)
			}
			freeBody(e.body)
		}
		for s.p.unconfirmed.len() > 0 {
			m := s.p.unconfirmed.pop()
			if m.records == 1 {
				if m.reports == 0 {
					s.undelivered(ctx, *m.body, &entry{time: m.time, level: m.level})
				}
			} else {
				for line := range bytes.SplitSeq(*m.body, []byte("\n")) {
					s.undelivered(ctx, line, nil)
				}
			}
			if m.records > 1 {
				// Drop reports are not records: do not count them.
				s.undeliv.Add(-int64(m.reports))
			}
			s.q.release(m)
		}
		if n := s.undeliv.Load(); n > 0 {
			s.closeErr = fmt.Errorf("%w: %d of them", ErrUndelivered, n)
			if err := ctx.Err(); err != nil {
				s.closeErr = fmt.Errorf("%w: %d of them (%w)", ErrUndelivered, n, err)
			}
		}
	})
	return s.closeErr
}

// undelivered counts a record that Close gives up on and hands it to the
// fallback handler.
func (s *shared) undelivered(ctx context.Context, body []byte, e *entry) {
	s.undeliv.Add(1)
	if s.opts.Fallback != nil {
		fallback(ctx, s.opts.Fallback, body, e)
	}
}

// Stats are the handler's counters. Once the buffer is empty,
// Handled == Confirmed + Dropped + Undelivered.
type Stats struct {
	Handled     uint64 // records given to Handle
	Published   uint64 // records sent to the broker, each counted once
	Confirmed   uint64 // records the broker confirmed; with confirms off, records sent
	Dropped     uint64 // records dropped because the buffer was full or the handler closed
	Resent      uint64 // sends of records left unconfirmed by a lost connection
	Buffered    int    // records held now, waiting to be sent or confirmed
	Undelivered int    // records still held when Close gave up
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
		Buffered:    buffered,
		DropReports: p.dropReports.Load(),
		Reconnects:  p.reconnects.Load(),
		Connected:   p.connected.Load(),
		LastError:   lastErr,
		Undelivered: int(h.s.undeliv.Load()),
	}
}

var _ slog.Handler = (*Handler)(nil)
