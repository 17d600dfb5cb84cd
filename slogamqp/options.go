package slogamqp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/wire"
)

// Overflow says which record to drop when the buffer is full.
type Overflow int

const (
	// DropNewest drops the record being logged. It is the default: it costs
	// Handle nothing, and during an outage it keeps the records that tell how
	// the outage began.
	DropNewest Overflow = iota
	// DropOldest drops the oldest records not yet handed to the broker to make
	// room, keeping the most recent ones. Records already sent and awaiting a
	// confirm are never dropped.
	DropOldest
	// Block makes Handle wait for room, up to Options.BlockTimeout and
	// never past the end of Handle's context, and then drop the record.
	// It is the choice for batch jobs and command-line tools that must not
	// lose a record; never for request paths, whose latency it would tie
	// to the broker's.
	Block
)

// String names the policy: "drop-newest", "drop-oldest" or "block".
func (o Overflow) String() string {
	switch o {
	case DropNewest:
		return "drop-newest"
	case DropOldest:
		return "drop-oldest"
	case Block:
		return "block"
	}
	return fmt.Sprintf("Overflow(%d)", int(o))
}

// Options configures a Handler. A nil *Options, and every zero field, means
// the default that the field's comment states.
type Options struct {
	// URL of the broker, amqp:// or amqps://, or a comma-separated list of
	// them. Default: $AMQP_URL, else amqp://guest:guest@localhost:5672/.
	// Its password is never shown.
	URL string
	// URLs are several brokers, such as a cluster's nodes; when set, URL
	// is ignored. Each reconnect tries the next, starting from a random one
	// so that many producers spread over the nodes. Default: URL.
	URLs []string
	// TLSConfig is used for amqps:// URLs. Default: nil, which verifies the
	// server against the system's roots.
	TLSConfig *tls.Config

	// Exchange to publish to. Default: "logs".
	Exchange string
	// ExchangeKind is "fanout", "direct", "topic" or "headers". Default:
	// "fanout".
	ExchangeKind string
	// Durable declares the exchange durable. Default: false, as the RabbitMQ
	// tutorial declares "logs"; an exchange is declared the same way by every
	// client that shares it, or the broker refuses the second one.
	Durable bool
	// RoutingKey computes each record's routing key. Default: the level in
	// lower case ("info", "warn+2") for direct and topic exchanges, and ""
	// for fanout and headers. It runs inside Handle and must not retain r.
	RoutingKey func(r slog.Record) string
	// Persistent marks messages persistent (delivery mode 2), for durable
	// queues that must survive a broker restart. Default: false (transient).
	Persistent bool

	// AppID is the AMQP app-id of every message. Default: the program's
	// file name.
	AppID string
	// ConnectionName is shown by rabbitmqctl list_connections and the
	// management UI. Default: AppID.
	ConnectionName string

	// Level is the minimum level handled. Default: slog.LevelInfo.
	Level slog.Leveler
	// AddSource adds the "source" attribute, as slog.HandlerOptions does.
	// Default: false.
	AddSource bool
	// ReplaceAttr rewrites attributes, as slog.HandlerOptions.ReplaceAttr
	// does. It may be called more than once for an attribute given to
	// WithAttrs. Default: nil.
	ReplaceAttr func(groups []string, a slog.Attr) slog.Attr
	// ContextAttrs gives attributes from the context of each record, such
	// as a trace or request id, placed at the top level after the message
	// whatever the logger's groups, as the samber handlers' AttrFromContext
	// does. ReplaceAttr sees them with no groups. Default: nil.
	ContextAttrs func(ctx context.Context) []slog.Attr

	// BufferRecords bounds the records held in memory: those waiting to be
	// sent and those sent but not yet confirmed. Default: 16384.
	BufferRecords int
	// BufferBytes bounds the memory those records hold: the capacity of
	// the buffer of each, which may be up to twice its length, and is at
	// least 512 bytes. A record larger than BufferBytes is dropped.
	// Default: 16 MiB.
	BufferBytes int
	// Overflow is what happens when the buffer is full. Default: DropNewest.
	Overflow Overflow
	// BlockTimeout is the longest Handle waits for room with Overflow
	// Block. Default: 5s.
	BlockTimeout time.Duration

	// DisableConfirms turns publisher confirms off: records count as
	// delivered once written to the socket, and those in flight when a
	// connection dies are lost (at-most-once, faster). Default: false
	// (confirms on, at-least-once).
	DisableConfirms bool
	// MaxInFlight bounds the records sent and awaiting a confirm.
	// Default: 1024.
	MaxInFlight int

	// Batch, when not nil, packs records into messages of many records
	// each, one JSON object per line (content type application/x-ndjson,
	// header "records"), which moves many times more records per second
	// than one message per record. Consumers must then split messages
	// (package sink does). Default: nil, one record per message, which
	// every AMQP consumer, such as the RabbitMQ tutorial's, understands.
	Batch *BatchOptions

	// Fallback receives, decoded back from JSON, every record that is
	// dropped or left undelivered at Close, for instance a
	// slog.NewTextHandler(os.Stderr, nil). It is called on the goroutine that
	// dropped the record: inside Handle for DropNewest. Default: nil.
	Fallback slog.Handler
	// OnError is told of every connection failure and refusal, with the
	// wait before the next attempt, and of the broker blocking the
	// connection (retryIn 0). It runs on the publisher's goroutine and must
	// neither block nor log through this handler.
	// Default: one line on standard error per failure.
	OnError func(err error, retryIn time.Duration)

	// MinBackoff is the first wait before reconnecting, and before sending
	// again a message that the broker nacked (doubling for each nack).
	// The waits start again from it once a connection has lasted 5s.
	// Default: 100ms.
	MinBackoff time.Duration
	// MaxBackoff is the longest wait before reconnecting, and the wait after
	// a refusal that retrying cannot fix. Default: 30s.
	MaxBackoff time.Duration
	// Heartbeat is the AMQP heartbeat; a stalled connection is noticed after
	// about three of them. Default: 10s.
	Heartbeat time.Duration
	// WriteTimeout bounds each socket write, so a broker that stops reading
	// cannot hang the publisher. Default: 10s.
	WriteTimeout time.Duration
}

// BatchOptions closes a batch at MaxRecords, MaxBytes or Linger,
// whichever comes first.
type BatchOptions struct {
	// MaxRecords per message. Default: 1000.
	MaxRecords int
	// MaxBytes per message, about. Default: 256 KiB.
	MaxBytes int
	// Linger is how long a batch that is not full waits for more records.
	// It bounds the delay that batching adds. Default: 5ms.
	Linger time.Duration
}

// withDefaults returns a copy of o with every zero field set to its default,
// or an error naming what is invalid.
func (o *Options) withDefaults() (Options, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	ep, err := opts.endpoint().WithDefaults()
	if err != nil {
		return opts, fmt.Errorf("slogamqp: %w", err)
	}
	opts.URL, opts.URLs, opts.Exchange, opts.ExchangeKind = ep.URL, ep.URLs, ep.Exchange, ep.Kind
	opts.Heartbeat, opts.WriteTimeout, opts.MinBackoff, opts.MaxBackoff = ep.Heartbeat, ep.WriteTimeout, ep.MinBackoff, ep.MaxBackoff
	if opts.RoutingKey == nil && (opts.ExchangeKind == "direct" || opts.ExchangeKind == "topic") {
		opts.RoutingKey = levelKey
	}
	if opts.AppID == "" {
		opts.AppID = filepath.Base(os.Args[0])
	}
	if opts.ConnectionName == "" {
		opts.ConnectionName = opts.AppID
	}
	if opts.Level == nil {
		opts.Level = slog.LevelInfo
	}
	if opts.BufferRecords <= 0 {
		opts.BufferRecords = 16384
	}
	if opts.BufferBytes <= 0 {
		opts.BufferBytes = 16 << 20
	}
	if opts.Overflow != DropNewest && opts.Overflow != DropOldest && opts.Overflow != Block {
		return opts, fmt.Errorf("slogamqp: unknown overflow policy %v", opts.Overflow)
	}
	if opts.BlockTimeout <= 0 {
		opts.BlockTimeout = 5 * time.Second
	}

	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1024
	}
	if opts.Batch != nil {
		b := *opts.Batch
		if b.MaxRecords <= 0 {
			b.MaxRecords = 1000
		}
		if b.MaxBytes <= 0 {
			b.MaxBytes = 256 << 10
		}
		if b.Linger <= 0 {
			b.Linger = 5 * time.Millisecond
		}
		opts.Batch = &b
	}
	if opts.OnError == nil {
		opts.OnError = stderrReport
	}
	return opts, nil
}

// endpoint is the broker and exchange these options name.
func (o *Options) endpoint() amqpconn.Endpoint {
	return amqpconn.Endpoint{
		URL: o.URL, URLs: o.URLs, TLS: o.TLSConfig, Name: o.ConnectionName,
		Exchange: o.Exchange, Kind: o.ExchangeKind, Durable: o.Durable,
		Heartbeat: o.Heartbeat, WriteTimeout: o.WriteTimeout, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
	}
}

func levelKey(r slog.Record) string { return wire.LevelKey(r.Level) }

func stderrReport(err error, retryIn time.Duration) {
	if retryIn == 0 {
		fmt.Fprintf(os.Stderr, "slogamqp: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "slogamqp: %v (retrying in %v)\n", err, retryIn.Round(time.Millisecond))
}
