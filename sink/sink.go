// Package sink receives log records from a RabbitMQ exchange ("logs",
// fanout, by default) and writes them to rotating files or to the screen.
//
// Each connection declares the exchange exactly as the handler in
// package slogamqp does, binds a fresh exclusive, server-named queue to it
// (as RabbitMQ's publish/subscribe tutorial does), and acknowledges
// records only once they are written. Every running sink gets every
// record. From the producer and seq headers that slogamqp sets, the sink
// drops duplicates and tells how many records each producer published that
// it did not get.
package sink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/wire"
)

// Options configures a Sink. A nil *Options, and every zero field, means
// the default that the field's comment states.
type Options struct {
	// URL of the broker, or a comma-separated list of them. Default:
	// $AMQP_URL, else amqp://guest:guest@localhost:5672/. Its password is
	// never shown.
	URL string
	// URLs are several brokers, such as a cluster's nodes; when set, URL
	// is ignored. Each reconnect tries the next, starting from a random
	// one. Default: URL.
	URLs []string
	// TLSConfig is used for amqps:// URLs. Default: the system's roots.
	TLSConfig *tls.Config

	// Exchange to bind to. Default: "logs".
	Exchange string
	// ExchangeKind as declared by the producers. Default: "fanout".
	ExchangeKind string
	// Durable must match the producers' declaration. Default: false.
	Durable bool
	// BindingKeys bind the queue, one binding each: on a topic exchange
	// patterns such as "error" or "#", on a direct exchange levels.
	// Default: "" for fanout, "#" for topic, and for direct the four
	// levels' keys (debug, info, warn, error), so that every record the
	// handler routes by level arrives.
	BindingKeys []string

	// Queue, when set, is a durable quorum queue to consume, declared
	// identically by every sink that names it, instead of a fresh exclusive
	// queue per connection: records published while no sink runs wait in
	// it, and sinks that share it share its records (each written by one).
	// Default: "", the tutorial's exclusive queue.
	Queue string
	// QueueMaxBytes bounds Queue (x-max-length-bytes); past it the broker
	// drops the oldest records (x-overflow drop-head), which a sink that
	// stays running counts as missed. Default: 1 GiB.
	QueueMaxBytes int64
	// SingleActive makes one sink of those sharing Queue the active
	// consumer, the others standing by (x-single-active-consumer): one
	// ordered file, with failover. Default: false.
	SingleActive bool
	// Stream, when set, is a RabbitMQ stream to read (x-queue-type
	// stream): it keeps records for StreamMaxAge and StreamMaxBytes, and
	// any number of sinks read it independently, each from where it
	// chooses. Default: "".
	Stream string
	// StreamFrom is where a stream reader starts: "first", "last", "next",
	// a time (RFC 3339), a duration back from now ("1h"), or an offset.
	// A file sink with a StatePath resumes after the last record it wrote
	// instead. Default: "next".
	StreamFrom string
	// StreamMaxAge is how long the stream keeps records. Default: 7 days.
	StreamMaxAge time.Duration
	// StreamMaxBytes bounds the stream's size on disk. Default: 10 GiB.
	StreamMaxBytes int64
	// StatePath, when set, is where the sink keeps what it must remember
	// across restarts: the producers' recent seqs, so that a record
	// redelivered after a crash is not written twice. Written after every
	// commit, before the acknowledgement. Default: "" (nothing kept).
	StatePath string

	// Name is the connection name, as rabbitmqctl list_connections shows it.
	// Default: "logsink".
	Name string
	// Outputs receive every record. Default: text on standard error.
	Outputs []Output
	// Level drops records below it (they are still acknowledged).
	// Default: nil, which keeps every record.
	Level slog.Leveler
	// Prefetch is how many unacknowledged records the broker sends ahead.
	// Default: 1000.
	Prefetch int
	// MaxBody cuts longer message bodies, marking the record malformed.
	// Memory held is about Prefetch × the broker's message size limit
	// while records arrive, and this much per record once decoded.
	// Default: 1 MiB.
	MaxBody int

	// Diag receives the sink's own diagnostics (connections, gaps, errors
	// and statistics) as slog.TextHandler lines, each with its time and
	// level. Default: standard error.
	Diag io.Writer
	// Logger receives the diagnostics instead, when set: a program's own
	// logger, say. Default: a slog.TextHandler on Diag.
	Logger *slog.Logger

	// MinBackoff and MaxBackoff bound the wait before reconnecting.
	// Defaults: 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Heartbeat is the AMQP heartbeat. Default: 10s.
	Heartbeat time.Duration
	// WriteTimeout bounds each socket write, so a broker that stops reading
	// cannot hang the sink's acknowledgements. Default: 10s.
	WriteTimeout time.Duration
}

// endpoint is the broker and exchange these options name.
func (o *Options) endpoint() amqpconn.Endpoint {
	return amqpconn.Endpoint{
		URL: o.URL, URLs: o.URLs, TLS: o.TLSConfig, Name: o.Name,
		Exchange: o.Exchange, Kind: o.ExchangeKind, Durable: o.Durable,
		Heartbeat: o.Heartbeat, WriteTimeout: o.WriteTimeout, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
	}
}

// Stats are a sink's counters.
type Stats struct {
	Received   uint64 // messages received
	Written    uint64 // records written to every output
	Malformed  uint64 // records whose body was not a clean record (written anyway)
	Duplicates uint64 // records received again and not written
	Filtered   uint64 // records below Options.Level
	Missed     uint64 // records that producers published and this sink has not received
	Torn       uint64 // lines a failed write left cut in an output (each written again whole)
	Reconnects uint64 // connections after the first
	Failovers  uint64 // connections to another broker than the one before
	// WriteErrors counts failed writes to an output, each retried while
	// its records stay unacknowledged.
	WriteErrors uint64
	Held        uint64    // records received and not yet written: unacknowledged
	LastWrite   time.Time // when records were last written, or zero
	Writing     bool      // false while writes to an output are failing
	Broker      string    // the broker connected to now, its password hidden, or ""
}

// Attrs gives the counters as attributes, for a diagnostic record.
func (s Stats) Attrs() []slog.Attr {
	return []slog.Attr{
		slog.Uint64("received", s.Received), slog.Uint64("written", s.Written), slog.Uint64("malformed", s.Malformed),
		slog.Uint64("duplicates", s.Duplicates), slog.Uint64("filtered", s.Filtered), slog.Uint64("missed", s.Missed),
		slog.Uint64("torn", s.Torn), slog.Uint64("reconnects", s.Reconnects), slog.Uint64("failovers", s.Failovers),
		slog.Uint64("write_errors", s.WriteErrors), slog.Uint64("held", s.Held),
	}
}

// String gives the counters as key=value pairs, for a diagnostic line.
func (s Stats) String() string {
	var b strings.Builder
	for i, a := range s.Attrs() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// Sink consumes records and writes them to its outputs.
type Sink struct {
	opts     Options
	exchange amqpconn.Exchange
	tracker  *tracker
	sessMu   sync.Mutex // held by a session, so that stopping waits for its last acks
	sessions int
	batch    []Record
	taken    []int // per output: records of batch it has taken
	from     any   // the stream offset to start from
	offset   int64 // stream offset of the last record received, or -1

	received, written, malformed, duplicates, filtered, missed, reconnects, failovers, writeErrors atomic.Uint64

	held      atomic.Int64           // len(batch), for Stats
	lastWrite atomic.Int64           // unix nanoseconds
	failing   atomic.Bool            // the last write to an output failed
	broker    atomic.Pointer[string] // of the session now, nil between sessions
}

// New checks opts and returns a Sink; Run starts it.
func New(opts *Options) (*Sink, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Name == "" {
		o.Name = "logsink"
	}
	ep, err := o.endpoint().WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	o.URL, o.URLs, o.Exchange, o.ExchangeKind = ep.URL, ep.URLs, ep.Exchange, ep.Kind
	o.Heartbeat, o.WriteTimeout, o.MinBackoff, o.MaxBackoff = ep.Heartbeat, ep.WriteTimeout, ep.MinBackoff, ep.MaxBackoff
	o.BindingKeys = bindingKeys(o.BindingKeys, o.ExchangeKind)
	if o.Diag == nil {
		o.Diag = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(o.Diag, nil))
	}
	if len(o.Outputs) == 0 {
		o.Outputs = []Output{NewScreen(os.Stderr, FormatText, UseColor(os.Stderr))}
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 1000
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.QueueMaxBytes <= 0 {
		o.QueueMaxBytes = 1 << 30
	}
	if o.StreamMaxAge <= 0 {
		o.StreamMaxAge = 7 * 24 * time.Hour
	}
	if o.StreamMaxBytes <= 0 {
		o.StreamMaxBytes = 10 << 30
	}
	if o.SingleActive && o.Queue == "" {
		return nil, errors.New("sink: SingleActive needs a Queue")
	}
	from, err := streamOffset(o.StreamFrom, time.Now())
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	if o.Queue != "" && o.Stream != "" {
		return nil, errors.New("sink: Queue and Stream exclude each other")
	}
	tr := newTracker()
	if o.StatePath != "" {
		loaded, st, err := loadTracker(o.StatePath)
		if err != nil {
			return nil, fmt.Errorf("sink: state %s: %w (remove it to start afresh)", o.StatePath, err)
		}
		if o.Stream != "" && st.Offset >= 0 {
			from = st.Offset + 1 // resume after the last record written
		}
		if err := restore(&o, st.Sizes); err != nil {
			return nil, fmt.Errorf("sink: state %s: %w", o.StatePath, err)
		}
		tr = loaded
	}
	return &Sink{
		opts:     o,
		exchange: o.endpoint().ExchangeDecl(),
		tracker:  tr,
		from:     from,
		offset:   -1,
		taken:    make([]int, len(o.Outputs)),
	}, nil
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{
		Received: s.received.Load(), Written: s.written.Load(), Malformed: s.malformed.Load(),
		Duplicates: s.duplicates.Load(), Filtered: s.filtered.Load(), Missed: s.missed.Load(),
		Reconnects: s.reconnects.Load(), Failovers: s.failovers.Load(), Torn: s.torn(),
		WriteErrors: s.writeErrors.Load(), Held: uint64(s.held.Load()), Writing: !s.failing.Load(),
		LastWrite: unixTime(s.lastWrite.Load()), Broker: deref(s.broker.Load()),
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// torn sums the torn lines of the outputs that count them.
func (s *Sink) torn() uint64 {
	var n uint64
	for _, o := range s.opts.Outputs {
		if t, ok := o.(interface{ Torn() uint64 }); ok {
			n += t.Torn()
		}
	}
	return n
}

// Reopen closes and reopens the output files, as after an external
// rotation (SIGHUP).
func (s *Sink) Reopen() error {
	var errs []error
	for _, o := range s.opts.Outputs {
		errs = append(errs, o.Reopen())
	}
	return errors.Join(errs...)
}

// connected says which broker a session is on, reading which queue.
func (s *Sink) connected(how, broker, queue string) {
	s.opts.Logger.Info(how, "broker", broker, "queue", queue, "exchange", s.opts.Exchange)
}

// warn is a diagnostic about something lost, failing or retried.
func (s *Sink) warn(format string, args ...any) {
	s.opts.Logger.Warn(fmt.Sprintf(format, args...))
}

// Run consumes until ctx is done, reconnecting whenever the connection is
// lost. On ctx's end it stops consuming, writes and acknowledges what it
// has received, closes the outputs and prints its statistics.
func (s *Sink) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stopping waits for a running session to finish its last writes and
	// acks, and is immediate between sessions.
	stop := context.AfterFunc(ctx, func() {
		s.sessMu.Lock()
		cancel()
		s.sessMu.Unlock()
	})
	defer stop()
	loop := s.opts.endpoint().Loop()
	loop.Session = func(_ context.Context, conn *amqpconn.Conn, ready func()) error {
		return s.session(ctx, conn, ready)
	}
	loop.Report = func(err error, retryIn time.Duration) {
		if ctx.Err() == nil {
			s.warn("%v; retrying at %s", err, time.Now().Add(retryIn).Format(time.TimeOnly))
		}
	}
	loop.Run(runCtx)
	var errs []error
	for _, o := range s.opts.Outputs {
		errs = append(errs, o.Close())
	}
	s.opts.Logger.LogAttrs(context.Background(), slog.LevelInfo, "stopped", s.Stats().Attrs()...)
	return errors.Join(errs...)
}

func (s *Sink) session(ctx context.Context, conn *amqpconn.Conn, ready func()) error {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	ch, queue, deliveries, err := s.subscribe(conn)
	if err != nil {
		return err
	}
	ready()
	s.broker.Store(&conn.Broker)
	defer s.broker.Store(nil)
	// Records received when the connection dies cannot be acknowledged, and
	// their queue dies with it: write them rather than lose them.
	defer s.write(ctx)
	switch s.sessions++; {
	case conn.Failover:
		s.reconnects.Add(1)
		s.failovers.Add(1)
		s.connected("failed over", conn.Broker, queue)
	case s.sessions > 1:
		s.reconnects.Add(1)
		s.connected("reconnected", conn.Broker, queue)
	default:
		s.connected("connected", conn.Broker, queue)
	}
	c := newCommitter(s, ch)
	defer c.stop()
	stopBinding := make(chan struct{})
	defer close(stopBinding)
	bindErrs := s.keepBound(conn, queue, stopBinding)
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("channel closed")
			}
			s.receive(&d)
			if err := c.received(ctx, d.DeliveryTag); err != nil {
				return err
			}
		case <-c.due:
			if err := c.commit(ctx); err != nil {
				return err
			}
		case err := <-bindErrs:
			return err
		case <-ctx.Done():
			return s.finish(ctx, ch, queue, deliveries, c)
		}
	}
}

const consumerTag = "logsink"

// subscribe declares the session's queue, as the tutorial does (a fresh,
// server-named queue that the broker deletes with this connection), binds
// it and starts consuming.
func (s *Sink) subscribe(conn *amqpconn.Conn) (*amqp.Channel, string, <-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, "", nil, err
	}
	q, err := s.declareQueue(ch)
	if err != nil {
		return nil, "", nil, err
	}
	if err := s.bind(ch, q.Name); err != nil {
		return nil, "", nil, err
	}
	if err := ch.Qos(s.opts.Prefetch, 0, false); err != nil {
		return nil, "", nil, err
	}
	var args amqp.Table
	if s.opts.Stream != "" {
		from := s.from
		if s.offset >= 0 {
			from = s.offset + 1 // after a reconnect: where this session left off
		}
		args = amqp.Table{"x-stream-offset": from}
	}
	live := s.opts.Queue == "" && s.opts.Stream == ""
	deliveries, err := ch.Consume(q.Name, consumerTag, false, live, false, false, args)
	if err != nil {
		return nil, "", nil, fmt.Errorf("consume: %w", err)
	}
	return ch, q.Name, deliveries, nil
}

// streamOffset turns StreamFrom into the x-stream-offset argument.
func streamOffset(from string, now time.Time) (any, error) {
	switch from {
	case "", "next":
		return "next", nil
	case "first", "last":
		return from, nil
	}
	if n, err := strconv.ParseInt(from, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	if t, err := time.Parse(time.RFC3339, from); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(from); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return nil, fmt.Errorf("invalid stream start %q (want first, last, next, an RFC 3339 time, a duration such as 1h, or an offset)", from)
}

// deliveryLimit is how many times a quorum queue delivers a record before
// it drops it: a record that keeps a sink from acknowledging it (a crash
// each time it is written, say) cannot loop forever.
const deliveryLimit = 10

// declareQueue declares the session's queue: the durable quorum queue of
// Options.Queue, or, as the tutorial does, a fresh server-named queue
// that the broker deletes with this connection.
func (s *Sink) declareQueue(ch *amqp.Channel) (amqp.Queue, error) {
	if s.opts.Stream != "" {
		args := amqp.Table{
			"x-queue-type":       "stream",
			"x-max-age":          strconv.FormatInt(int64(s.opts.StreamMaxAge/time.Second), 10) + "s",
			"x-max-length-bytes": s.opts.StreamMaxBytes,
		}
		q, err := ch.QueueDeclare(s.opts.Stream, true, false, false, false, args)
		if err != nil {
			return q, fmt.Errorf("declare stream %q (max age %v, max %d bytes): %w", s.opts.Stream, s.opts.StreamMaxAge, s.opts.StreamMaxBytes, amqpconn.Classify(err))
		}
		return q, nil
	}
	if s.opts.Queue == "" {
		q, err := ch.QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			return q, fmt.Errorf("declare queue: %w", err)
		}
		return q, nil
	}
	args := amqp.Table{
		"x-queue-type":       "quorum",
		"x-max-length-bytes": s.opts.QueueMaxBytes,
		"x-overflow":         "drop-head",
		"x-delivery-limit":   int64(deliveryLimit),
	}
	if s.opts.SingleActive {
		args["x-single-active-consumer"] = true
	}
	q, err := ch.QueueDeclare(s.opts.Queue, true, false, false, false, args)
	if err != nil {
		return q, fmt.Errorf("declare quorum queue %q (max %d bytes, drop-head, delivery limit %d, single active %t): %w",
			s.opts.Queue, s.opts.QueueMaxBytes, deliveryLimit, s.opts.SingleActive, amqpconn.Classify(err))
	}
	return q, nil
}

// finish stops consuming, takes what the broker had already sent, and
// commits it.
func (s *Sink) finish(ctx context.Context, ch *amqp.Channel, queue string, deliveries <-chan amqp.Delivery, c *committer) error {
	if err := ch.Cancel(consumerTag, false); err != nil {
		return err
	}
	for d := range deliveries {
		s.receive(&d)
		c.pending = d.DeliveryTag
	}
	if err := s.drain(ctx, ch, queue, c); err != nil {
		return err
	}
	if c.pending != 0 {
		if err := c.commit(ctx); err != nil {
			return err
		}
	}
	return amqpconn.ErrDone
}

// drain takes what is left in a live queue, which the broker deletes
// with the connection: records confirmed to their producer and not yet
// pushed to this sink would be lost. The queue is unbound first, so that
// the drain ends. A durable queue keeps its records for the next sink.
func (s *Sink) drain(ctx context.Context, ch *amqp.Channel, queue string, c *committer) error {
	if s.opts.Queue != "" || s.opts.Stream != "" {
		return nil
	}
	for _, key := range s.opts.BindingKeys {
		if err := ch.QueueUnbind(queue, key, s.opts.Exchange, nil); err != nil {
			return err
		}
	}
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil || !ok {
			return err
		}
		s.receive(&d)
		c.pending = d.DeliveryTag
		if len(s.batch) >= maxBatch {
			if err := c.commit(ctx); err != nil {
				return err
			}
		}
	}
}

// committer decides when to commit: records are written and acknowledged
// together, every commitEvery or sooner when half the prefetch window or
// maxBatch records wait, since a commit per message would cost a flush and
// an ack frame each.
type committer struct {
	s           *Sink
	ch          *amqp.Channel
	maxMessages int
	pending     uint64 // highest delivery tag not yet acknowledged
	messages    int
	timer       *time.Timer
	due         <-chan time.Time // the timer's channel while it runs
}

func newCommitter(s *Sink, ch *amqp.Channel) *committer {
	c := &committer{s: s, ch: ch, maxMessages: max(1, s.opts.Prefetch/2), timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	return c
}

// received notes a delivery received, committing when enough wait.
func (c *committer) received(ctx context.Context, tag uint64) error {
	c.pending = tag
	if c.messages++; c.messages >= c.maxMessages || len(c.s.batch) >= maxBatch {
		return c.commit(ctx)
	}
	if c.due == nil {
		c.timer.Reset(commitEvery)
		c.due = c.timer.C
	}
	return nil
}

func (c *committer) commit(ctx context.Context) error {
	c.due = nil
	c.timer.Stop()
	tag := c.pending
	c.pending, c.messages = 0, 0
	return c.s.commit(ctx, c.ch, tag)
}

func (c *committer) stop() { c.timer.Stop() }

// bind declares the exchange, as every producer does, and binds the queue
// to it. Both are no-ops when nothing changed; run again every
// rebindEvery, they put back an exchange that was deleted, and with it
// the binding, which the broker deletes with the exchange and tells no
// consumer about.
func (s *Sink) bind(ch *amqp.Channel, queue string) error {
	if err := s.exchange.Declare(ch); err != nil {
		return err
	}
	for _, key := range s.opts.BindingKeys {
		if err := ch.QueueBind(queue, key, s.opts.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue to %q with key %q: %w", s.opts.Exchange, key, err)
		}
	}
	return nil
}

// bindingKeys are keys, or the default keys of an exchange of kind.
func bindingKeys(keys []string, kind string) []string {
	switch {
	case len(keys) > 0:
		return slices.Clone(keys)
	case kind == "topic":
		return []string{"#"}
	case kind == "direct":
		return slices.Clone(wire.LevelKeys)
	}
	return []string{""}
}

// rebindEvery bounds how long a sink misses records after its exchange
// was deleted and declared again by a producer.
const rebindEvery = time.Second

// keepBound binds queue again every rebindEvery, on a channel and a
// goroutine of its own: a slow or stuck RPC must never hold the consumer
// (amqp091 has known hangs in RPCs on a busy channel). The goroutine ends
// with stop, or with the connection; its one error ends the session.
func (s *Sink) keepBound(conn *amqpconn.Conn, queue string, stop <-chan struct{}) <-chan error {
	errs := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err != nil {
			errs <- err
			return
		}
		defer ch.Close()
		t := time.NewTicker(rebindEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if err := s.bind(ch, queue); err != nil {
					errs <- err
					return
				}
			case <-stop:
				return
			}
		}
	}()
	return errs
}

// A commit writes what was received at most commitEvery ago, and at most
// maxBatch records at once.
const (
	commitEvery = 20 * time.Millisecond
	maxBatch    = 10000
)

// receive decodes a delivery, one record or a batch of them, and adds
// each record to the batch unless it is a duplicate or filtered out.
func (s *Sink) receive(d *amqp.Delivery) {
	ts := d.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	if off, ok := d.Headers["x-stream-offset"].(int64); ok {
		s.offset = off
	}
	meta := wire.ParseHeaders(d.Headers)
	src := source{producer: meta.Producer, window: meta.Window, app: d.AppId, ts: ts, durations: meta.Durations}
	for seq, body := range wire.Records(d.Body, d.ContentType, meta.Seq) {
		contentType := d.ContentType
		if contentType == wire.ContentTypeNDJSON {
			contentType = wire.ContentTypeJSON
		}
		s.receiveRecord(body, contentType, src, seq)
	}
}

// source is what a delivery says of the records it carries.
type source struct {
	producer, app string
	window        uint64
	ts            time.Time
	durations     string // wire.HeaderDurations
}

func (s *Sink) receiveRecord(body []byte, contentType string, src source, seq uint64) {
	s.received.Add(1)
	producer, app, ts := src.producer, src.app, src.ts
	if seq > 0 {
		dup, gap := s.tracker.observe(producer, seq, src.window)
		if dup {
			s.duplicates.Add(1)
			return
		}
		// Sinks that share a queue each see part of every producer's
		// records: a gap there is another sink's share.
		if shared := s.opts.Queue != "" && !s.opts.SingleActive; !shared {
			s.missed.Store(s.tracker.missing)
		} else {
			gap = 0
		}
		if gap > 0 {
			s.warn("missed %d records from producer %s (app %q) before seq %d", gap, safe(producer), safe(app), seq)
		}
	}
	rec := Decode(body, contentType, ts, s.opts.MaxBody)
	rec.durations = src.durations
	if rec.Malformed != "" {
		s.malformed.Add(1)
	}
	if s.opts.Level != nil && rec.Level() < s.opts.Level.Level() {
		s.filtered.Add(1)
		return
	}
	s.batch = append(s.batch, rec)
	s.held.Store(int64(len(s.batch)))
}

// commit writes the batch and then acknowledges everything up to tag.
// Nothing unwritten is acknowledged.
func (s *Sink) commit(ctx context.Context, ch *amqp.Channel, tag uint64) error {
	if err := s.write(ctx); err != nil {
		return err
	}
	if err := s.persist(); err != nil {
		return err
	}
	return ch.Ack(tag, true)
}

// persist makes what was written durable before it is acknowledged, for
// a durable queue: the outputs that can fsync do, once per commit, and the
// dedupe state is saved, so that a record redelivered after a crash is
// recognised.
func (s *Sink) persist() error {
	if s.opts.Queue == "" && s.opts.Stream == "" {
		return nil
	}
	for _, o := range s.opts.Outputs {
		if sy, ok := o.(interface{ Sync() error }); ok {
			if err := sy.Sync(); err != nil {
				return fmt.Errorf("fsync: %w", err)
			}
		}
	}
	if s.opts.StatePath == "" {
		return nil
	}
	if err := s.tracker.save(s.opts.StatePath, s.sizes(), s.offset); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// sizer is an output whose length the state records, and which a restart
// cuts back to it: what was written after the last saved state is written
// again when the broker redelivers it, so it must not stay twice.
type sizer interface {
	Size() (int64, error)
	CutBack(size int64) (cut int64, err error)
}

func (s *Sink) sizes() []int64 {
	sizes := make([]int64, len(s.opts.Outputs))
	for i, o := range s.opts.Outputs {
		sizes[i] = -1
		if sz, ok := o.(sizer); ok {
			if n, err := sz.Size(); err == nil {
				sizes[i] = n
			}
		}
	}
	return sizes
}

// restore cuts each file back to the length the state recorded, after a
// crash between writing records and saving the state that says so.
func restore(o *Options, sizes []int64) error {
	for i, out := range o.Outputs {
		sz, ok := out.(sizer)
		if !ok || i >= len(sizes) || sizes[i] < 0 {
			continue
		}
		cut, err := sz.CutBack(sizes[i])
		if err != nil {
			return err
		}
		if cut > 0 {
			o.Logger.Warn(fmt.Sprintf("cut back %d bytes written after the last saved state; the broker redelivers them", cut), "output", i)
		}
	}
	return nil
}

// write writes the batch to every output, retrying an output that fails
// until it works again or ctx ends. It remembers how far each output got,
// so that called again after a failure it gives no output a record twice.
func (s *Sink) write(ctx context.Context) error {
	if len(s.batch) == 0 {
		return nil
	}
	for i, o := range s.opts.Outputs {
		for attempt := 0; ; attempt++ {
			err := s.writeTo(i, o)
			if err == nil {
				break
			}
			s.writeErrors.Add(1)
			s.failing.Store(true)
			wait := min(time.Duration(1<<min(attempt, 5))*100*time.Millisecond, 5*time.Second)
			s.warn("write failed, holding %d unacknowledged records, retrying in %v: %v", len(s.batch), wait, err)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return fmt.Errorf("stopped with %d records unwritten: %w", len(s.batch)-s.taken[i], err)
			}
			// A file moved or deleted under us is opened again by name.
			o.Reopen()
		}
	}
	s.written.Add(uint64(len(s.batch)))
	s.lastWrite.Store(time.Now().UnixNano())
	s.failing.Store(false)
	s.held.Store(0)
	clear(s.batch)
	s.batch = s.batch[:0]
	clear(s.taken)
	return nil
}

// writeTo gives output i the records of the batch it has not taken yet,
// and flushes it.
func (s *Sink) writeTo(i int, o Output) error {
	for ; s.taken[i] < len(s.batch); s.taken[i]++ {
		if err := o.Write(&s.batch[s.taken[i]]); err != nil {
			return err
		}
	}
	return o.Flush()
}

// safe makes a header value fit for a diagnostic line.
func safe(s string) string {
	return strings.ToValidUTF8(string(appendEscaped(nil, s, false)), "?")
}
