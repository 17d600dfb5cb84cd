package slogamqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("***") }

type point struct{ X, Y int }

// TestBodyMatchesJSONHandler checks that each body is byte for byte what
// slog.JSONHandler writes for the same record and options.
func TestBodyMatchesJSONHandler(t *testing.T) {
	ts := time.Date(2026, 11, 29, 9, 0, 0, 123456789, time.UTC)
	dropTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		if a.Key == "password" {
			return slog.String("password", "***")
		}
		return a
	}
	tests := []struct {
		name  string
		opts  slog.HandlerOptions
		build func(slog.Handler) slog.Handler
		rec   func() slog.Record
	}{
		{"levels", slog.HandlerOptions{}, nil, func() slog.Record {
			return slog.NewRecord(ts, slog.LevelWarn+2, "custom level", 0)
		}},
		{"kinds", slog.HandlerOptions{}, nil, func() slog.Record {
			r := slog.NewRecord(ts, slog.LevelInfo, "kinds", 0)
			r.AddAttrs(
				slog.String("s", "quote \" backslash \\ newline \n <html> \u2028"),
				slog.Int("i", -42), slog.Uint64("u", math.MaxUint64),
				slog.Float64("f", 3.25), slog.Float64("nan", math.NaN()),
				slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond),
				slog.Time("t", ts), slog.Any("err", errors.New("boom")),
				slog.Any("struct", point{1, 2}), slog.Any("nil", nil),
				slog.Any("bytes", []byte("hi")), slog.Any("secret", secret("pw")),
				slog.Any("map", map[string]int{"a": 1}),
				slog.Any("chan", make(chan int)),
			)
			return r
		}},
		{"groups", slog.HandlerOptions{}, func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("svc", "api")}).WithGroup("req").WithAttrs([]slog.Attr{slog.Int("id", 7)}).WithGroup("empty")
		}, func() slog.Record {
			r := slog.NewRecord(ts, slog.LevelError, "groups", 0)
			r.AddAttrs(slog.Group("g", slog.Int("a", 1), slog.Group("inner", slog.String("b", "x"))), slog.Group("", slog.Int("inline", 1)))
			return r
		}},
		{"replace-attr", slog.HandlerOptions{ReplaceAttr: dropTime}, func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("password", "hunter2")})
		}, func() slog.Record {
			r := slog.NewRecord(ts, slog.LevelInfo, "replaced", 0)
			r.AddAttrs(slog.String("password", "hunter2"))
			return r
		}},
		{"add-source", slog.HandlerOptions{AddSource: true}, nil, func() slog.Record {
			var pcs [1]uintptr
			runtimeCallers(pcs[:])
			return slog.NewRecord(ts, slog.LevelInfo, "source", pcs[0])
		}},
		{"zero-time", slog.HandlerOptions{}, nil, func() slog.Record {
			return slog.NewRecord(time.Time{}, slog.LevelDebug, "", 0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			var jh slog.Handler = slog.NewJSONHandler(&want, &tt.opts)
			h := offline(t, &Options{Level: slog.LevelDebug, AddSource: tt.opts.AddSource, ReplaceAttr: tt.opts.ReplaceAttr})
			var sh slog.Handler = h
			if tt.build != nil {
				jh, sh = tt.build(jh), tt.build(h)
			}
			if err := jh.Handle(context.Background(), tt.rec()); err != nil {
				t.Fatal(err)
			}
			if err := sh.Handle(context.Background(), tt.rec()); err != nil {
				t.Fatal(err)
			}
			got := h.bodies()
			if len(got) != 1 || got[0]+"\n" != want.String() {
				t.Errorf("body\n got %q\nwant %q", got, want.String())
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	var lv slog.LevelVar
	h := offline(t, &Options{Level: &lv})
	for _, tc := range []struct {
		min, level slog.Level
		want       bool
	}{
		{slog.LevelInfo, slog.LevelDebug, false},
		{slog.LevelInfo, slog.LevelInfo, true},
		{slog.LevelWarn, slog.LevelInfo, false},
		{slog.LevelWarn, slog.LevelError, true},
		{slog.LevelDebug, slog.LevelDebug, true},
	} {
		lv.Set(tc.min)
		if got := h.Enabled(context.Background(), tc.level); got != tc.want {
			t.Errorf("min %v: Enabled(%v) = %v, want %v", tc.min, tc.level, got, tc.want)
		}
	}
	if offline(t, nil).Enabled(context.Background(), slog.LevelDebug) {
		t.Error("default level enables debug")
	}
}

// TestConcurrentClones logs from many goroutines through clones of one
// handler and checks that every record is buffered whole and in order per
// goroutine.
func TestConcurrentClones(t *testing.T) {
	h := offline(t, nil)
	const workers, each = 16, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := slog.New(h).With("worker", w).WithGroup("g")
			for i := range each {
				l.Info("msg", "i", i)
			}
		}()
	}
	wg.Wait()
	next := make([]int, workers)
	bodies := h.bodies()
	if len(bodies) != workers*each {
		t.Fatalf("buffered %d records, want %d", len(bodies), workers*each)
	}
	for _, b := range bodies {
		m := decode(t, b)
		w := int(m["worker"].(float64))
		i := int(m["g"].(map[string]any)["i"].(float64))
		if i != next[w] {
			t.Fatalf("worker %d: record %d, want %d", w, i, next[w])
		}
		next[w]++
	}
}

func TestOverflowCountsExactly(t *testing.T) {
	for _, policy := range []Overflow{DropNewest, DropOldest} {
		t.Run(policy.String(), func(t *testing.T) {
			var fb bytes.Buffer
			h := offline(t, &Options{BufferRecords: 10, Overflow: policy, Fallback: slog.NewTextHandler(&fb, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			})})
			l := slog.New(h)
			for i := range 25 {
				l.Info("rec", "i", i)
			}
			st := h.Stats()
			if st.Handled != 25 || st.Dropped != 15 || st.Buffered != 10 {
				t.Fatalf("stats %+v, want handled 25, dropped 15, buffered 10", st)
			}
			first := 0 // DropNewest keeps 0..9
			if policy == DropOldest {
				first = 15
			}
			for k, b := range h.bodies() {
				if i := int(decode(t, b)["i"].(float64)); i != first+k {
					t.Fatalf("buffered record %d has i=%d, want %d", k, i, first+k)
				}
			}
			lines := strings.Split(strings.TrimSpace(fb.String()), "\n")
			if len(lines) != 15 {
				t.Fatalf("fallback got %d records, want 15:\n%s", len(lines), fb.String())
			}
			dropped := 10 // DropNewest drops 10..24
			if policy == DropOldest {
				dropped = 0
			}
			if want := fmt.Sprintf("level=INFO msg=rec i=%d", dropped); lines[0] != want {
				t.Errorf("first fallback line %q, want %q", lines[0], want)
			}
		})
	}
}

func TestBufferBytesBound(t *testing.T) {
	h := offline(t, &Options{BufferBytes: 1000})
	l := slog.New(h)
	big := strings.Repeat("x", 2000)
	l.Info("too big for the whole buffer", "pad", big)
	for range 100 {
		l.Info("small", "pad", strings.Repeat("y", 80))
	}
	st := h.Stats()
	total := 0
	for _, b := range h.bodies() {
		total += len(b)
	}
	if total > 1000 {
		t.Errorf("buffered %d bytes, limit 1000", total)
	}
	if st.Handled != 101 || st.Dropped+uint64(st.Buffered) != 101 || st.Buffered == 0 {
		t.Errorf("stats %+v do not add up", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{URL: "http://guest:s3cret@host/"}, "scheme"},
		{Options{URL: "amqp://guest:s3cret@host:notaport/"}, "invalid AMQP URL"},
		{Options{URL: "amqp://localhost/", ExchangeKind: "fan-out"}, `unknown exchange kind "fan-out"`},
		{Options{URL: "amqp://localhost/", Overflow: Overflow(7)}, "unknown overflow policy"},
	} {
		h, err := New(&tc.opts)
		if err == nil {
			h.Close(context.Background())
			t.Errorf("New(%+v) succeeded", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q): error %q, want it to mention %q and hide the password", tc.opts.URL, err, tc.want)
		}
	}
}

func TestStringHidesPassword(t *testing.T) {
	addr := brokertest.FreeAddr(t)
	var reported []string
	h, err := New(&Options{URL: "amqp://guest:s3cret@" + addr + "/", OnError: func(err error, _ time.Duration) {
		reported = append(reported, err.Error())
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	slog.New(h).Info("undeliverable")
	if err := h.Close(ctx); !errors.Is(err, ErrUndelivered) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Close: %v", err)
	}
	if st := h.Stats(); st.LastError == nil || strings.Contains(st.LastError.Error(), "s3cret") {
		t.Errorf("LastError: %v", st.LastError)
	}
	for _, r := range reported {
		if strings.Contains(r, "s3cret") {
			t.Errorf("reported %q", r)
		}
	}
	if s := h.String(); strings.Contains(s, "s3cret") || !strings.Contains(s, "guest:***@"+addr) {
		t.Errorf("String() = %q", s)
	}
}

func TestHandleAfterCloseDrops(t *testing.T) {
	h := offline(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.Close(ctx)
	slog.New(h).Info("late")
	if st := h.Stats(); st.Dropped != 1 || st.Buffered != 0 {
		t.Errorf("stats after Close: %+v", st)
	}
}

// TestHandleAllocatesNothing checks Handle's own cost in steady state: a
// record encoded, buffered and, as the publisher does, taken and released.
func TestHandleAllocatesNothing(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumented builds allocate")
	}
	errs := make(chan error, 1)
	h, err := New(&Options{URL: "amqp://guest:guest@" + brokertest.FreeAddr(t) + "/", MinBackoff: time.Hour, MaxBackoff: time.Hour, BufferRecords: 64,
		OnError: func(err error, _ time.Duration) {
			select {
			case errs <- err:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(canceled())
	<-errs // the publisher has tried once and now sleeps: it allocates nothing more
	l := slog.New(h).With("svc", "api")
	ctx := context.Background()
	logOne := func() {
		l.LogAttrs(ctx, slog.LevelInfo, "request served", slog.String("path", "/api/v1/orders"), slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond))
	}
	logOne() // warm the pools
	drained := testing.AllocsPerRun(1000, func() {
		logOne()
		m, _ := h.s.q.take()
		h.s.q.release(m)
	})
	full := testing.AllocsPerRun(1000, logOne) // fills the small buffer, then drops
	if drained != 0 || full != 0 {
		t.Errorf("allocations per record: %v while drained, %v while filling and dropping; want 0", drained, full)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
