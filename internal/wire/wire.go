// Package wire is the contract between the producers and the consumers of
// log records on the broker: the headers, content types, message ids,
// batch framing and numbering that slogamqp writes and sink reads. It is
// written once here, the encoding beside the decoding, so that the two
// sides cannot drift; slogamqp re-exports the names users need.
package wire

import (
	"bytes"
	"iter"
	"log/slog"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Header names. A consumer detects gaps and duplicates from HeaderProducer
// and HeaderSeq: each producer numbers its records 1, 2, 3, … and a resent
// message keeps its number and its message id.
const (
	HeaderLevel    = "level"    // the first record's level, as slog writes it ("INFO")
	HeaderProducer = "producer" // random per producer
	HeaderSeq      = "seq"      // of the message's first record
	HeaderRecords  = "records"  // in a batch: how many records the message holds
	// HeaderWindow is how far back, in seq, the producer may resend a
	// message: a consumer that remembers that many seqs per producer never
	// writes a record twice.
	HeaderWindow = "window"
	// HeaderDurations lists, comma-separated, the keys (the last part of
	// a grouped name) of a single record's attributes whose values are
	// durations: JSON writes them as integer nanoseconds, and a screen can
	// then show 1.5s. Absent when there are none, and in a batch.
	HeaderDurations = "durations"
)

// LevelKey is a record's routing key on a direct or topic exchange, as
// the RabbitMQ routing tutorial's severities: "debug", "info", "warn",
// "error", or slog's name of another level in lower case ("warn+2").
func LevelKey(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelInfo:
		return "info"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return strings.ToLower(l.String())
}

// LevelKeys are the routing keys of slog's four levels: what a consumer of
// a direct exchange binds to receive every record at those levels.
var LevelKeys = []string{"debug", "info", "warn", "error"}

// Content types of message bodies.
const (
	ContentTypeJSON   = "application/json"     // one record
	ContentTypeNDJSON = "application/x-ndjson" // a batch: one record per line
)

// Meta is what a message says of the records it carries, besides their
// bodies.
type Meta struct {
	Level    string
	Producer string
	Seq      uint64 // of the first record; 0 when the producer numbers nothing
	Records  int    // in a batch; 0 for a single record
	Window   uint64
	// Durations are the keys of a single record's duration attributes,
	// comma-separated; "" for none, and always in a batch.
	Durations string
}

// MessageID is the id of the message whose first record is seq: unique per
// producer, and the same when the message is resent.
func MessageID(producer string, seq uint64) string {
	var b [64]byte
	return string(appendMessageID(b[:0], producer, seq))
}

// appendMessageID appends MessageID(producer, seq) to b.
func appendMessageID(b []byte, producer string, seq uint64) []byte {
	b = append(b, producer...)
	b = append(b, '-')
	return strconv.AppendUint(b, seq, 10)
}

// ContentType is the content type of a message of m.
func (m Meta) ContentType() string {
	if m.Records > 0 {
		return ContentTypeNDJSON
	}
	return ContentTypeJSON
}

// SetHeaders writes m into t, which a producer may reuse from message to
// message: amqp091 serializes it before Publish returns. A value equal to
// the one t holds is left in place, so that reusing t boxes only what
// changed (the seq, in a steady stream).
func (m Meta) SetHeaders(t amqp.Table) {
	setString(t, HeaderLevel, m.Level)
	setString(t, HeaderProducer, m.Producer)
	t[HeaderSeq] = int64(m.Seq)
	setInt(t, HeaderWindow, int64(m.Window))
	setInt(t, HeaderRecords, int64(m.Records))
	setString(t, HeaderDurations, m.Durations)
}

// setString sets t[k] to v, or deletes it when v is "".
func setString(t amqp.Table, k, v string) {
	if v == "" {
		delete(t, k)
	} else if old, ok := t[k].(string); !ok || old != v {
		t[k] = v
	}
}

// setInt sets t[k] to v, or deletes it when v is 0.
func setInt(t amqp.Table, k string, v int64) {
	if v == 0 {
		delete(t, k)
	} else if old, ok := t[k].(int64); !ok || old != v {
		t[k] = v
	}
}

// IsDuration reports whether key is one of durations, a HeaderDurations
// list.
func IsDuration(durations, key string) bool {
	for durations != "" {
		var k string
		k, durations, _ = strings.Cut(durations, ",")
		if k == key {
			return true
		}
	}
	return false
}

// ParseHeaders reads what a message's headers say. Headers that are absent
// or of another type, as from producers other than slogamqp, read as zero:
// Seq 0 means the records cannot be tracked.
func ParseHeaders(t amqp.Table) Meta {
	var m Meta
	m.Level, _ = t[HeaderLevel].(string)
	m.Producer, _ = t[HeaderProducer].(string)
	seq, _ := t[HeaderSeq].(int64)
	window, _ := t[HeaderWindow].(int64)
	records, _ := t[HeaderRecords].(int64)
	if m.Producer != "" && seq > 0 {
		m.Seq = uint64(seq)
	}
	m.Window = uint64(max(window, 0))
	m.Records = int(max(records, 0))
	if m.Records == 0 {
		m.Durations, _ = t[HeaderDurations].(string)
	}
	return m
}

// AppendRecord appends a record (a JSON object without newlines) to a
// batch body that holds n records.
func AppendRecord(batch []byte, n int, record []byte) []byte {
	if n > 0 {
		batch = append(batch, '\n')
	}
	return append(batch, record...)
}

// BatchSize is the length of a batch of records whose bodies add up to n
// bytes.
func BatchSize(records, n int) int { return n + max(records-1, 0) }

// Records yields the records of a message body with their seqs: one for
// ContentTypeJSON and others, one per line for ContentTypeNDJSON, numbered
// from seq up (all 0 when seq is 0).
func Records(body []byte, contentType string, seq uint64) iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		if contentType != ContentTypeNDJSON {
			yield(seq, body)
			return
		}
		for line := range bytes.SplitSeq(body, []byte("\n")) {
			if !yield(seq, line) {
				return
			}
			if seq > 0 {
				seq++
			}
		}
	}
}
