package sink

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/logfan/logfan/internal/wire"
)

// Formats for the screen.
const (
	FormatText = "text" // time, level, message, key=value attributes
	FormatJSON = "json" // one JSON object per line
)

// unsafe reports whether a terminal could act on r: C0 and C1 controls
// (ESC starts colour and cursor sequences, CR rewrites the line, U+009B is
// an 8-bit CSI), line separators and bidirectional overrides, which can
// reorder what a line appears to say.
func unsafe(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x2028, r == 0x2029, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// appendEscaped appends s with every unsafe rune and invalid byte escaped
// as Go would write it in a string literal (\n, \x1b, \u202e), so nothing a
// record holds reaches the terminal raw. quote also escapes '"' and '\\'.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, `\x`...)
			buf = append(buf, hex[s[i]>>4], hex[s[i]&0xf])
		case quote && (r == '"' || r == '\\'):
			buf = append(buf, '\\', byte(r))
		case unsafe(r):
			buf = appendRuneEscape(buf, r)
		default:
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return buf
}

const hex = "0123456789abcdef"

func appendRuneEscape(buf []byte, r rune) []byte {
	switch r {
	case '\n':
		return append(buf, `\n`...)
	case '\r':
		return append(buf, `\r`...)
	case '\t':
		return append(buf, `\t`...)
	}
	if r < 0x80 {
		return append(buf, '\\', 'x', hex[r>>4], hex[r&0xf])
	}
	return append(buf, fmt.Sprintf(`\u%04x`, r)...)
}

// needsQuote reports whether a value must be quoted to read back as one
// value: empty, or holding spaces, '=', '"' or anything escaped.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == ' ' || r == '=' || r == '"' || r == '\\' || unsafe(r) || r == utf8.RuneError && size == 1 {
			return true
		}
		i += size
	}
	return false
}

func appendValue(buf []byte, s string) []byte {
	if !needsQuote(s) {
		return append(buf, s...)
	}
	buf = append(buf, '"')
	buf = appendEscaped(buf, s, true)
	return append(buf, '"')
}

var levelColors = map[slog.Level]string{
	slog.LevelDebug: "\x1b[2m",
	slog.LevelInfo:  "\x1b[32m",
	slog.LevelWarn:  "\x1b[33m",
	slog.LevelError: "\x1b[31m",
}

// AppendText appends r as one line of human text, ending in '\n':
//
//	2026-11-29T09:00:00.123Z INFO message key=value group.key="two words"
//
// With color, the level is coloured; nothing from the record can add
// control sequences of its own.
func AppendText(buf []byte, r *Record, color bool) []byte {
	if t := r.Time(); !t.IsZero() {
		buf = t.AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
		buf = append(buf, ' ')
	}
	level := r.Level()
	lv := level.String()
	if color {
		c := levelColors[level]
		if c == "" {
			c = levelColors[max(slog.LevelDebug, min(slog.LevelError, level/4*4))]
		}
		buf = append(buf, c...)
		buf = append(buf, lv...)
		buf = append(buf, "\x1b[0m"...)
	} else {
		buf = append(buf, lv...)
	}
	for range 5 - len(lv) {
		buf = append(buf, ' ')
	}
	buf = append(buf, ' ')
	buf = appendEscaped(buf, r.Msg(), false)
	for _, a := range r.Attrs() {
		buf = appendAttr(buf, "", a, r.durations)
	}
	return append(buf, '\n')
}

// appendAttr appends a as key=value; an integer whose key the producer
// listed as a duration is shown as one (dur=1.5s).
func appendAttr(buf []byte, prefix string, a slog.Attr, durations string) []byte {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, ga := range v.Group() {
			buf = appendAttr(buf, p, ga, durations)
		}
		return buf
	}
	if a.Key == "" && v.Any() == nil {
		return buf
	}
	buf = append(buf, ' ')
	buf = appendEscaped(buf, prefix, false)
	buf = appendEscaped(buf, a.Key, false)
	buf = append(buf, '=')
	switch v.Kind() {
	case slog.KindString:
		return appendValue(buf, v.String())
	case slog.KindInt64:
		if wire.IsDuration(durations, a.Key) {
			return append(buf, time.Duration(v.Int64()).String()...)
		}
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(buf, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindTime:
		return v.Time().AppendFormat(buf, time.RFC3339Nano)
	}
	if v.Kind() == slog.KindAny && v.Any() == nil {
		return append(buf, "<nil>"...)
	}
	return appendValue(buf, v.String())
}

// AppendJSON appends the record's JSON and a newline, escaping what a
// terminal could act on: encoding/json leaves C1 controls, bidirectional
// overrides and invalid UTF-8 raw.
func AppendJSON(buf []byte, r *Record) []byte {
	s := r.JSON
	for i := 0; i < len(s); {
		c, size := utf8.DecodeRune(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			buf = append(buf, `\ufffd`...)
		case c == '\t':
			buf = append(buf, ' ') // outside strings: valid JSON has no raw tab inside one
		case unsafe(c):
			buf = append(buf, fmt.Sprintf(`\u%04x`, c)...)
		default:
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '\n')
}
