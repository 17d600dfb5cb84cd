// Command emitlog publishes log records to the "logs" exchange from the
// shell: what the RabbitMQ tutorial's emit_log.py should have been.
//
//	emitlog [flags] message words [key=value ...]
//	tail -f app.log | emitlog [flags]
//
// It never drops a record to keep up: it waits for the broker, up to
// -timeout. It exits 0 only once the broker has confirmed every record it
// read, whole; else 1, with one line saying how many were not delivered,
// and why.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logfan/logfan/internal/cli"
	"github.com/logfan/logfan/internal/logrecord"
	"github.com/logfan/logfan/slogamqp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int { return cli.ExitCode("emitlog", err, stderr) }

// batchOptions is the handler's batch mode when on, else nil.
func batchOptions(on bool) *slogamqp.BatchOptions {
	if !on {
		return nil
	}
	return &slogamqp.BatchOptions{}
}

// fixedKey routes every record with key, or, for "", leaves the
// handler's default.
func fixedKey(key string) func(slog.Record) string {
	if key == "" {
		return nil
	}
	return func(slog.Record) string { return key }
}

// Run is the whole command, testable in-process: args without the program
// name; records come from args, or from stdin when args hold no message.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emitlog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	brokerURL := cli.URLFlags(fs)
	exchange := fs.String("exchange", "logs", "`exchange` to publish to")
	kind := fs.String("exchange-type", "fanout", "`kind` of the exchange: fanout, direct or topic")
	durable := fs.Bool("durable-exchange", false, "declare the exchange durable, as sinks with -durable-exchange do")
	routingKey := fs.String("routing-key", "", "routing `key` of every record (default: the record's level, on a direct or topic exchange)")
	level := fs.String("level", "info", "`level` of the records: debug, info, warn, error, or e.g. warn+2")
	batch := fs.Bool("batch", false, "pack records into NDJSON messages of up to 1000 (batch mode): many times the records per second from a pipe")
	asJSON := fs.Bool("json", false, "read each line as a JSON object (time, level, msg and typed attributes), as a program logging JSON writes it")
	version := fs.Bool("version", false, "print the version and exit")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the broker, for room while reading and for the last confirms at the end (`duration`)")
	fs.Usage = func() {} // a bad flag gets one line, from exitCode
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: emitlog [flags] message words [key=value ...]\n"+
				"       command | emitlog [flags]    (one record per line)\n\n"+
				"Publishes log records to RabbitMQ and exits 0 once the broker confirmed them.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return cli.Usage(err)
	}
	if *version {
		fmt.Fprintln(stdout, cli.Version("emitlog"))
		return nil
	}
	lv, err := cli.ParseLevel(*level)
	if err != nil {
		return err
	}
	url, err := brokerURL()
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return cli.Usage(fmt.Errorf("invalid -timeout %v: want a positive duration", *timeout))
	}

	h, err := slogamqp.New(&slogamqp.Options{
		URL:          url,
		Exchange:     *exchange,
		ExchangeKind: *kind,
		Durable:      *durable,
		RoutingKey:   fixedKey(*routingKey),
		Batch:        batchOptions(*batch),
		AppID:        "emitlog",
		Level:        slog.LevelDebug,
		// A command must not lose what it was given: wait for room, as
		// long as -timeout allows, instead of dropping.
		Overflow:     slogamqp.Block,
		BlockTimeout: *timeout,
		BufferBytes:  bufferBytes,
		OnError: func(err error, retryIn time.Duration) {
			fmt.Fprintf(stderr, "emitlog: %v (retrying in %v)\n", err, retryIn.Round(time.Millisecond))
		},
	})
	if err != nil {
		return cli.Usage(err)
	}
	var in input
	// Records go straight to the handler: a slog.Logger would spend a
	// quarter of emitlog's CPU finding a caller that no record shows.
	emit := func(msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(time.Now(), lv, msg, 0)
		r.AddAttrs(attrs...)
		h.Handle(ctx, r)
	}
	if fs.NArg() > 0 {
		msg, attrs := SplitArgs(fs.Args())
		emit(msg, attrs...)
	} else {
		in.readErr = readLines(stdin, maxLine, func(line []byte, n int) bool {
			if n > len(line) {
				in.cut++
				emit(string(line), slog.String("malformed", fmt.Sprintf("line of %d bytes cut to %d", n, len(line))))
			} else if *asJSON {
				r, ok := jsonRecord(line, lv, time.Now())
				if !ok {
					in.notJSON++
				}
				h.Handle(ctx, r)
			} else {
				emit(string(line))
			}
			// A record dropped after waiting -timeout for room: the broker
			// is not taking records, so stop reading more.
			if h.Stats().Dropped > 0 {
				in.stopped = true
			}
			return !in.stopped
		})
	}

	closeCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if in.notJSON > 0 {
		fmt.Fprintf(stderr, "emitlog: %d lines were not a JSON object and were sent as messages\n", in.notJSON)
	}
	return in.result(h.Close(closeCtx))
}

// jsonRecord is the record a line that is a JSON object describes:
// "time", "level" and "msg" taken as such (level names as slog's, or
// warning, fatal, critical, trace), every other member an attribute, typed
// as JSON has it, nested objects as groups. A time, level or msg in
// another form is kept as source_time, source_level or source_msg, so that
// no key appears twice. A line that is not a JSON object becomes the
// message of a record, and ok is false.
func jsonRecord(line []byte, lv slog.Level, now time.Time) (r slog.Record, ok bool) {
	r = slog.NewRecord(now, lv, "", 0)
	var kept []slog.Attr
	attrs, err := logrecord.Object(line, func(key string, raw json.RawMessage) bool {
		switch key {
		case slog.TimeKey, slog.LevelKey, slog.MessageKey:
			if !claim(&r, key, raw) {
				kept = append(kept, slog.Attr{Key: "source_" + key, Value: logrecord.Value(raw)})
			}
			return true
		}
		return false
	})
	if err != nil {
		r.Message = string(line)
		return r, false
	}
	r.AddAttrs(append(kept, attrs...)...)
	return r, true
}

// claim sets r's time, level or message from raw, if it has their form.
func claim(r *slog.Record, key string, raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	switch key {
	case slog.TimeKey:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err == nil {
			r.Time = t
		}
		return err == nil
	case slog.LevelKey:
		l, ok := levelAliases[strings.ToLower(s)]
		if !ok && l.UnmarshalText([]byte(s)) != nil {
			return false
		}
		r.Level = l
		return true
	}
	r.Message = s
	return true
}

// levelAliases are level names other loggers write.
var levelAliases = map[string]slog.Level{
	"trace": slog.LevelDebug - 4, "warning": slog.LevelWarn, "err": slog.LevelError,
	"critical": slog.LevelError + 4, "fatal": slog.LevelError + 4, "panic": slog.LevelError + 8,
}

// maxLine is the longest line sent whole: RabbitMQ 4's default maximum
// message size. A longer one is sent cut to it, marked as such.
const maxLine = 16 << 20

// bufferBytes holds several lines of maxLine, even JSON-escaped.
const bufferBytes = 64 << 20

// input is what reading the input left to report.
type input struct {
	cut     int   // lines longer than maxLine, sent cut
	notJSON int   // with -json, lines that were not a JSON object, sent as messages
	stopped bool  // reading stopped because a record was dropped
	readErr error // reading stdin failed
}

// result is the one error emitlog exits with, or nil when every record was
// read whole and confirmed.
func (in input) result(closeErr error) error {
	var problems []string
	var de *slogamqp.DeliveryError
	if errors.As(closeErr, &de) {
		problems = append(problems, fmt.Sprintf("%d of %d records not delivered (%d dropped, %d unconfirmed)", de.Dropped+de.Undelivered, de.Handled, de.Dropped, de.Undelivered))
		if de.Cause != nil {
			problems = append(problems, "gave up waiting: "+de.Cause.Error())
		}
		if de.LastError != nil {
			problems = append(problems, "last broker error: "+de.LastError.Error())
		}
	} else if closeErr != nil {
		problems = append(problems, closeErr.Error())
	}
	if in.stopped {
		problems = append(problems, "stopped reading stdin after the broker took no record within -timeout")
	}
	if in.cut > 0 {
		problems = append(problems, fmt.Sprintf("%d lines longer than %d bytes were sent cut", in.cut, maxLine))
	}
	if in.readErr != nil {
		problems = append(problems, "reading stdin: "+in.readErr.Error())
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// readLines calls fn with each non-empty line of r, without its line
// ending and cut to limit bytes, and the line's length before the cut,
// until fn returns false. However long a line is, reading goes on after it.
func readLines(r io.Reader, limit int, fn func(line []byte, n int) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte // a line longer than br's buffer, up to limit+2
	total := 0      // its length so far
	for {
		chunk, err := br.ReadSlice('\n')
		eol := len(chunk) - len(trimEOL(chunk))
		if err == bufio.ErrBufferFull || total > 0 {
			total += len(chunk)
			long = append(long, chunk[:min(len(chunk), max(0, limit+2-len(long)))]...)
			if err == bufio.ErrBufferFull {
				continue
			}
			chunk = long
		} else {
			total = len(chunk)
		}
		line := trimEOL(chunk)
		n := total - eol
		if n > 0 && !fn(line[:min(len(line), limit)], n) {
			return nil
		}
		long, total = long[:0], 0
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// SplitArgs splits command-line words into the message and the attributes
// given as key=value at the end, typed as JSON would read them (see
// typed): n=1 is a number, ok=true a boolean, n='"1"' the string "1".
func SplitArgs(words []string) (msg string, attrs []slog.Attr) {
	i := len(words)
	for i > 0 {
		k, _, ok := strings.Cut(words[i-1], "=")
		if !ok || !isKey(k) {
			break
		}
		i--
	}
	for _, w := range words[i:] {
		k, v, _ := strings.Cut(w, "=")
		attrs = append(attrs, slog.Attr{Key: k, Value: typed(v)})
	}
	return strings.Join(words[:i], " "), attrs
}

// jsonNumber is a number as JSON writes it: no leading zeros (007 is a
// code, not seven), no hex, no infinity.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// typed reads an attribute's value: true and false as booleans, JSON
// numbers as integers (those that fit in 64 bits) or floats, a JSON
// string literal ("...") as the string it holds, which is how to force a
// string, and anything else as itself.
func typed(v string) slog.Value {
	switch {
	case v == "true" || v == "false":
		return slog.BoolValue(v == "true")
	case jsonNumber.MatchString(v):
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && v != "-0" {
			return slog.Int64Value(n)
		}
		if !strings.ContainsAny(v, ".eE") && v != "-0" {
			return slog.StringValue(v) // an integer too long to be a number: an id
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return slog.Float64Value(f)
		}
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		var s string
		if json.Unmarshal([]byte(v), &s) == nil {
			return slog.StringValue(s)
		}
	}
	return slog.StringValue(v)
}

// isKey accepts the keys people type: letters, digits, '_', '-' and '.',
// so that "1+1=2" stays part of the message.
func isKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
