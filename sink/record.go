package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/logfan/logfan/internal/logrecord"
)

// Record is one log record as the sink received it.
type Record struct {
	Time  time.Time
	Level slog.Level
	Msg   string
	Attrs []slog.Attr
	// JSON is the record as one line of JSON: the body as published when it
	// was a JSON object, else an object made from the fields above.
	JSON []byte
	// Malformed says why the body was not a clean record, or is "".
	Malformed string
}

// Decode turns a message body into a Record. It never fails: a body that
// is not a JSON object, such as the plain text that the RabbitMQ
// tutorial's emit_log.py sends, becomes a record whose message is its text
// and whose time is ts (the AMQP timestamp, or the time of receipt).
// Bodies longer than maxBody bytes are cut to that length. Invalid UTF-8,
// invalid JSON, empty and cut bodies are marked Malformed, and kept.
func Decode(body []byte, contentType string, ts time.Time, maxBody int) Record {
	var malformed string
	if maxBody > 0 && len(body) > maxBody {
		malformed = "body of " + strconv.Itoa(len(body)) + " bytes cut to " + strconv.Itoa(maxBody)
		body = body[:maxBody]
	}
	trimmed := bytes.TrimSpace(body)
	looksJSON := len(trimmed) > 0 && trimmed[0] == '{'
	if malformed == "" && looksJSON {
		if r, err := logrecord.Parse(trimmed); err == nil {
			rec := Record{Time: r.Time, Level: r.Level, Msg: r.Message, JSON: trimmed}
			r.Attrs(func(a slog.Attr) bool {
				rec.Attrs = append(rec.Attrs, a)
				return true
			})
			if rec.Time.IsZero() {
				rec.Time = ts
			}
			if bytes.ContainsAny(trimmed, "\r\n") {
				// Valid JSON spread over lines would break one record per line.
				var c bytes.Buffer
				json.Compact(&c, trimmed)
				rec.JSON = c.Bytes()
			}
			return rec
		}
	}
	switch {
	case malformed != "":
	case len(body) == 0:
		malformed = "empty body"
	case !utf8.Valid(body):
		malformed = "invalid UTF-8"
	case looksJSON || strings.HasPrefix(contentType, "application/json"):
		malformed = "invalid JSON"
	}
	rec := Record{Time: ts, Level: slog.LevelInfo, Msg: strings.ToValidUTF8(string(body), "\uFFFD"), Malformed: malformed}
	if malformed != "" {
		rec.Attrs = []slog.Attr{slog.String("malformed", malformed)}
	}
	rec.JSON = rec.encodeJSON()
	return rec
}

// encodeJSON writes the record as slog.JSONHandler would.
func (r *Record) encodeJSON() []byte {
	var buf bytes.Buffer
	rec := slog.NewRecord(r.Time, r.Level, r.Msg, 0)
	rec.AddAttrs(r.Attrs...)
	slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.Level(-1 << 20)}).Handle(context.Background(), rec)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
