package slogamqp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// format encodes records as slog.JSONHandler does, byte for byte, and
// keeps what WithAttrs and WithGroup said pre-formatted, as slog's
// commonHandler does: each clone formats its attributes once, in
// WithAttrs, and Handle copies them. It is modeled on log/slog's JSON
// handler (BSD licence, The Go Authors); TestBodyMatchesJSONHandler and
// FuzzMatchesJSONHandler hold it to the same output.
type format struct {
	addSource bool
	replace   func(groups []string, a slog.Attr) slog.Attr
	pre       []byte   // attributes from WithAttrs, with the groups they opened
	groups    []string // every WithGroup name, in order
	nOpen     int      // how many of groups pre opened
	preDurs   string   // keys of pre's durations, comma-separated
	// lastDurs is the last durations list, reused while it repeats; one
	// for a handler and every logger made from it.
	lastDurs *atomic.Pointer[string]
}

func newFormat(addSource bool, replace func([]string, slog.Attr) slog.Attr) *format {
	return &format{addSource: addSource, replace: replace, lastDurs: new(atomic.Pointer[string])}
}

func (f *format) clone() *format {
	f2 := *f
	f2.pre = f.pre[:len(f.pre):len(f.pre)]
	f2.groups = f.groups[:len(f.groups):len(f.groups)]
	return &f2
}

// withAttrs returns f with as formatted into its pre-formatted attributes.
func (f *format) withAttrs(as []slog.Attr) *format {
	if emptyGroups(as) == len(as) {
		return f
	}
	f2 := f.clone()
	s := f2.newState(f2.pre)
	defer s.free()
	s.noteDurs = true
	s.sep = len(f2.pre) > 0 && f2.pre[len(f2.pre)-1] != '{'
	s.openGroups()
	if !s.appendAttrs(as) {
		return f // every attribute was empty: nothing to add
	}
	f2.pre = s.buf
	if len(s.durs) > 0 {
		f2.preDurs = joinDurations(f.preDurs, string(s.durs))
	}
	f2.nOpen = len(f2.groups)
	return f2
}

// emptyGroups counts the groups without attributes in as.
func emptyGroups(as []slog.Attr) int {
	n := 0
	for _, a := range as {
		if a.Value.Kind() == slog.KindGroup && len(a.Value.Group()) == 0 {
			n++
		}
	}
	return n
}

func (f *format) withGroup(name string) *format {
	f2 := f.clone()
	f2.groups = append(f2.groups, name)
	return f2
}

// encode appends r as one JSON object, without a newline.
func (f *format) encode(buf []byte, r slog.Record, fromCtx []slog.Attr, durs *[]byte) []byte {
	s := f.newState(buf)
	defer s.free()
	if durs != nil {
		s.durs, s.noteDurs = (*durs)[:0], true
	}
	s.buf = append(s.buf, '{')
	groups := s.groups
	s.groups = nil // ReplaceAttr sees no groups for the built-in attributes
	if !r.Time.IsZero() {
		t := r.Time.Round(0) // strip the monotonic clock, as an Attr does
		if f.replace == nil {
			s.appendKey(slog.TimeKey)
			s.appendTime(t)
		} else {
			s.appendAttr(slog.Time(slog.TimeKey, t))
		}
	}
	if f.replace == nil {
		s.appendKey(slog.LevelKey)
		s.appendString(r.Level.String())
	} else {
		s.appendAttr(slog.Any(slog.LevelKey, r.Level))
	}
	if f.addSource {
		src := r.Source()
		if src == nil {
			src = &slog.Source{}
		}
		s.appendAttr(slog.Any(slog.SourceKey, src))
	}
	if f.replace == nil {
		s.appendKey(slog.MessageKey)
		s.appendString(r.Message)
	} else {
		s.appendAttr(slog.String(slog.MessageKey, r.Message))
	}
	for _, a := range fromCtx {
		s.appendAttr(a)
	}
	s.groups = groups
	s.appendNonBuiltIns(r)
	if durs != nil {
		*durs = s.durs
	}
	return s.buf
}

// state is the state of one encoding.
type state struct {
	f        *format
	buf      []byte
	sep      bool      // a comma goes before the next key
	groups   *[]string // the open groups, for ReplaceAttr
	durs     []byte    // with noteDurs, the keys of the durations written
	noteDurs bool
}

var groupPool = sync.Pool{New: func() any { s := make([]string, 0, 10); return &s }}

func (f *format) newState(buf []byte) state {
	s := state{f: f, buf: buf}
	if f.replace != nil {
		s.groups = groupPool.Get().(*[]string)
		*s.groups = append(*s.groups, f.groups[:f.nOpen]...)
	}
	return s
}

func (s *state) free() {
	if gs := s.groups; gs != nil {
		*gs = (*gs)[:0]
		groupPool.Put(gs)
	}
}

func (s *state) appendNonBuiltIns(r slog.Record) {
	if pre := s.f.pre; len(pre) > 0 {
		if s.sep {
			s.buf = append(s.buf, ',')
		}
		s.buf = append(s.buf, pre...)
		s.sep = pre[len(pre)-1] != '{'
	}
	// Record attributes go in the groups of WithGroup; a record without any
	// opens none.
	nOpen := s.f.nOpen
	if r.NumAttrs() > 0 {
		pos := len(s.buf)
		s.openGroups()
		nOpen = len(s.f.groups)
		empty := true
		r.Attrs(func(a slog.Attr) bool {
			if s.appendAttr(a) {
				empty = false
			}
			return true
		})
		if empty {
			s.buf = s.buf[:pos]
			nOpen = s.f.nOpen
		}
	}
	for range nOpen {
		s.buf = append(s.buf, '}')
	}
	s.buf = append(s.buf, '}')
}

func (s *state) openGroups() {
	for _, name := range s.f.groups[s.f.nOpen:] {
		s.openGroup(name)
	}
}

func (s *state) openGroup(name string) {
	s.appendKey(name)
	s.buf = append(s.buf, '{')
	s.sep = false
	if s.groups != nil {
		*s.groups = append(*s.groups, name)
	}
}

func (s *state) closeGroup() {
	s.buf = append(s.buf, '}')
	s.sep = true
	if s.groups != nil {
		*s.groups = (*s.groups)[:len(*s.groups)-1]
	}
}

// appendAttrs reports whether it appended anything.
func (s *state) appendAttrs(as []slog.Attr) bool {
	nonEmpty := false
	for _, a := range as {
		if s.appendAttr(a) {
			nonEmpty = true
		}
	}
	return nonEmpty
}

// appendAttr appends a, replaced and resolved, and reports whether it
// appended anything: empty attributes and empty groups are left out.
func (s *state) appendAttr(a slog.Attr) bool {
	a.Value = a.Value.Resolve()
	if s.f.replace != nil && a.Value.Kind() != slog.KindGroup {
		var gs []string
		if s.groups != nil {
			gs = *s.groups
		}
		a = s.f.replace(gs, a)
		a.Value = a.Value.Resolve()
	}
	if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return false
	}
	if v := a.Value; v.Kind() == slog.KindAny {
		if src, ok := v.Any().(*slog.Source); ok {
			if src == nil || *src == (slog.Source{}) {
				return false
			}
			a.Value = sourceGroup(src)
		}
	}
	if a.Value.Kind() != slog.KindGroup {
		s.appendKey(a.Key)
		s.appendValue(a.Value)
		if a.Value.Kind() == slog.KindDuration {
			s.noteDuration(a.Key)
		}
		return true
	}
	attrs := a.Value.Group()
	if len(attrs) == 0 {
		return true // as slog does: an empty group writes nothing, yet counts
	}
	pos := len(s.buf)
	if a.Key != "" { // a group with an empty key is inlined
		s.openGroup(a.Key)
	}
	if !s.appendAttrs(attrs) {
		s.buf = s.buf[:pos]
		return false
	}
	if a.Key != "" {
		s.closeGroup()
	}
	return true
}

// noteDuration adds key to the record's durations list (wire.HeaderDurations).
func (s *state) noteDuration(key string) {
	if !s.noteDurs || strings.Contains(key, ",") {
		return
	}
	if len(s.durs) > 0 {
		s.durs = append(s.durs, ',')
	}
	s.durs = append(s.durs, key...)
}

// durations is the list of a record's durations keys: those of the
// attributes from WithAttrs, then its own. A list that repeats, as it does
// for records logged at one place, is the same string: no allocation.
func (f *format) durations(own []byte) string {
	if len(own) == 0 {
		return f.preDurs
	}
	if last := f.lastDurs.Load(); last != nil && len(*last) == len(f.preDurs)+len(own)+min(len(f.preDurs), 1) &&
		strings.HasPrefix(*last, f.preDurs) && (*last)[len(*last)-len(own):] == string(own) {
		return *last
	}
	d := joinDurations(f.preDurs, string(own))
	f.lastDurs.Store(&d)
	return d
}

func joinDurations(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func sourceGroup(src *slog.Source) slog.Value {
	var as []slog.Attr
	if src.Function != "" {
		as = append(as, slog.String("function", src.Function))
	}
	if src.File != "" {
		as = append(as, slog.String("file", src.File))
	}
	if src.Line != 0 {
		as = append(as, slog.Int("line", src.Line))
	}
	return slog.GroupValue(as...)
}

func (s *state) appendKey(key string) {
	if s.sep {
		s.buf = append(s.buf, ',')
	}
	s.appendString(key)
	s.buf = append(s.buf, ':')
	s.sep = true
}

func (s *state) appendString(str string) {
	s.buf = append(s.buf, '"')
	s.buf = appendEscaped(s.buf, str)
	s.buf = append(s.buf, '"')
}

func (s *state) appendError(err error) { s.appendString(fmt.Sprintf("!ERROR:%v", err)) }

func (s *state) appendValue(v slog.Value) {
	defer func() {
		if r := recover(); r != nil {
			// As fmt and slog do: a nil pointer whose method panicked.
			if rv := reflect.ValueOf(v.Any()); rv.Kind() == reflect.Pointer && rv.IsNil() {
				s.appendString("<nil>")
				return
			}
			s.appendString(fmt.Sprintf("!PANIC: %v", r))
		}
	}()
	if err := s.appendJSONValue(v); err != nil {
		s.appendError(err)
	}
}

func (s *state) appendJSONValue(v slog.Value) error {
	switch v.Kind() {
	case slog.KindString:
		s.appendString(v.String())
	case slog.KindInt64:
		s.buf = strconv.AppendInt(s.buf, v.Int64(), 10)
	case slog.KindUint64:
		s.buf = strconv.AppendUint(s.buf, v.Uint64(), 10)
	case slog.KindFloat64:
		// As slog does: json.Marshal's floats differ from strconv's.
		return s.appendMarshal(v.Float64())
	case slog.KindBool:
		s.buf = strconv.AppendBool(s.buf, v.Bool())
	case slog.KindDuration:
		s.buf = strconv.AppendInt(s.buf, int64(v.Duration()), 10)
	case slog.KindTime:
		s.appendTime(v.Time())
	case slog.KindAny:
		a := v.Any()
		_, jm := a.(json.Marshaler)
		if err, ok := a.(error); ok && !jm {
			s.appendString(err.Error())
		} else {
			return s.appendMarshal(a)
		}
	default:
		panic(fmt.Sprintf("bad kind: %s", v.Kind()))
	}
	return nil
}

func (s *state) appendTime(t time.Time) {
	if y := t.Year(); y < 0 || y >= 10000 {
		s.appendError(errors.New("time.Time year outside of range [0,9999]"))
	}
	s.buf = append(s.buf, '"')
	s.buf = t.AppendFormat(s.buf, time.RFC3339Nano)
	s.buf = append(s.buf, '"')
}

type marshaler struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var marshalers = sync.Pool{New: func() any {
	m := &marshaler{}
	m.enc = json.NewEncoder(&m.buf)
	m.enc.SetEscapeHTML(false)
	return m
}}

func (s *state) appendMarshal(v any) error {
	m := marshalers.Get().(*marshaler)
	defer func() {
		if m.buf.Cap() <= 16<<10 {
			m.buf.Reset()
			marshalers.Put(m)
		}
	}()
	if err := m.enc.Encode(v); err != nil {
		return err
	}
	b := m.buf.Bytes()
	s.buf = append(s.buf, b[:len(b)-1]...) // without the newline
	return nil
}

// appendEscaped escapes str for JSON as slog does: control characters,
// quotes and backslashes, invalid UTF-8 as U+FFFD, and U+2028 and U+2029;
// HTML characters are left alone.
func appendEscaped(buf []byte, str string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(str); {
		if b := str[i]; b < utf8.RuneSelf {
			if b >= ' ' && b != '"' && b != '\\' {
				i++
				continue
			}
			buf = append(buf, str[start:i]...)
			switch b {
			case '\\', '"':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(str[i:])
		if c == utf8.RuneError && size == 1 {
			buf = append(buf, str[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			buf = append(buf, str[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(buf, str[start:]...)
}
