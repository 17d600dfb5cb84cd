package slogamqp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzMatchesJSONHandler builds handlers and records from the fuzzer's
// bytes (WithAttrs and WithGroup chains, every kind of value, groups empty
// and inlined, ReplaceAttr that drops, renames and regroups) and checks
// that the body is byte for byte what slog.JSONHandler writes.
func FuzzMatchesJSONHandler(f *testing.F) {
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"), "k", "v\xff\u2028<>\"", 3.5, int64(-7))
	f.Add([]byte("\x10\x21\x32\x43\x54\x65\x76\x87\x98\xa9\xba\xcb"), "", "", math.Inf(1), int64(0))
	f.Add([]byte("\x00\x11\x22\x33\x44\x55\x66\x77"), "time", "msg", math.NaN(), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, ops []byte, key, str string, fl float64, n int64) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		b := &attrBuilder{ops: ops, key: key, str: str, fl: fl, n: n}
		replace := b.replaceAttr()
		var want bytes.Buffer
		var jh slog.Handler = slog.NewJSONHandler(&want, &slog.HandlerOptions{Level: slog.Level(-100), ReplaceAttr: replace})
		var f slog.Handler = &Handler{f: newFormat(false, replace)}
		for b.more() && b.next()%4 != 0 {
			if b.next()%2 == 0 {
				// Not "": the Handler contract ignores it, JSONHandler does not.
				name := b.name() + "g"
				jh, f = jh.WithGroup(name), f.WithGroup(name)
			} else {
				as := b.attrs(2)
				jh, f = jh.WithAttrs(as), f.WithAttrs(as)
			}
		}
		r := slog.NewRecord(b.time(), slog.Level(int(b.next())-128), str, 0)
		r.AddAttrs(b.attrs(3)...)
		jh.Handle(context.Background(), r)
		got := f.(*Handler).f.encode(nil, r, nil, nil)
		if string(got)+"\n" != want.String() {
			t.Fatalf("\n got %s\nwant %s", got, want.String())
		}
	})
}

// attrBuilder turns the fuzzer's bytes into names, values and attributes.
type attrBuilder struct {
	ops   []byte
	i     int
	key   string
	str   string
	fl    float64
	n     int64
	depth int
}

func (b *attrBuilder) more() bool { return b.i < len(b.ops) }

func (b *attrBuilder) next() byte {
	if !b.more() {
		return 0
	}
	b.i++
	return b.ops[b.i-1]
}

func (b *attrBuilder) name() string {
	return []string{"", "g", "h", b.key, "msg", "time"}[int(b.next())%6]
}

func (b *attrBuilder) time() time.Time {
	switch b.next() % 4 {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(b.n%(1<<40), b.n%1e9).UTC()
	case 2:
		return time.Date(12000, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	}
	return time.Date(2026, 12, 1, 9, 0, 0, 5, time.Local)
}

func (b *attrBuilder) attrs(max int) []slog.Attr {
	var as []slog.Attr
	for k := 0; k < max && b.more(); k++ {
		as = append(as, b.attr())
	}
	return as
}

type fuzzStringer struct{ s string }

func (s fuzzStringer) LogValue() slog.Value { return slog.StringValue(s.s) }

func (b *attrBuilder) attr() slog.Attr {
	k := b.name()
	switch b.next() % 16 {
	case 0:
		return slog.String(k, b.str)
	case 1:
		return slog.Int64(k, b.n)
	case 2:
		return slog.Uint64(k, uint64(b.n))
	case 3:
		return slog.Float64(k, b.fl)
	case 4:
		return slog.Bool(k, b.n%2 == 0)
	case 5:
		return slog.Duration(k, time.Duration(b.n))
	case 6:
		return slog.Time(k, b.time())
	case 7:
		return slog.Any(k, errors.New(b.str))
	case 8:
		return slog.Any(k, map[string]any{b.str: b.n, "f": []any{b.fl}})
	case 9:
		return slog.Any(k, nil)
	case 10:
		return slog.Any(k, fuzzStringer{b.str})
	case 11:
		return slog.Attr{}
	case 12:
		return slog.Any(k, &slog.Source{File: b.str, Line: int(b.n % 1000)})
	default:
		if b.depth > 3 {
			return slog.String(k, "deep")
		}
		b.depth++
		defer func() { b.depth-- }()
		return slog.Group(k, b.attrsAsAny(int(b.next())%3)...)
	}
}

func (b *attrBuilder) attrsAsAny(n int) []any {
	var out []any
	for _, a := range b.attrs(n) {
		out = append(out, a)
	}
	return out
}

// replaceAttr returns nil or a ReplaceAttr that, by the fuzzer's choice,
// drops, renames or regroups what it is given, and depends on the groups.
func (b *attrBuilder) replaceAttr() func([]string, slog.Attr) slog.Attr {
	mode := b.next() % 4
	if mode == 0 {
		return nil
	}
	return func(groups []string, a slog.Attr) slog.Attr {
		switch {
		case mode == 1 && a.Key == b.key:
			return slog.Attr{}
		case mode == 2:
			a.Key = strings.Join(groups, ".") + "/" + a.Key
		case mode == 3 && len(groups) == 0 && a.Key == slog.LevelKey:
			return slog.Group("lv", slog.Any("v", a.Value))
		}
		return a
	}
}
