package slogamqp

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/brokertest"
)

// BenchmarkHandle logs the same record through slog.JSONHandler writing to
// io.Discard, the floor, and through a Handler. Compare the lines of one
// run (benchstat-friendly):
//
//	go test -run '^$' -bench Handle -benchmem -count 10 ./slogamqp
//
// "buffered" has no broker: the benchmark itself takes each record off the
// buffer, as the publisher does, so it measures Handle alone; "dropping"
// is Handle during an outage that has filled the buffer. "broker" and
// "broker-batch" publish to the real broker, which on a small machine
// competes with the benchmark for CPU and cannot take a record per
// microsecond: the dropped/op metric says how many were dropped.
// "delivered" and "delivered-batch" Block instead, so that every record
// is published and allocs/op counts the publisher's work per record too:
// their ns/op is the broker's rate, not Handle's cost.
func BenchmarkHandle(b *testing.B) {
	record := func(l *slog.Logger, ctx context.Context) {
		l.LogAttrs(ctx, slog.LevelInfo, "request served", slog.String("path", "/api/v1/orders"), slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond))
	}
	live := func(batch *BatchOptions, overflow Overflow) func(b *testing.B) (slog.Handler, func()) {
		return func(b *testing.B) (slog.Handler, func()) {
			h, err := New(&Options{URL: brokertest.URL(b), Exchange: brokertest.Name("bench"), Batch: batch, Overflow: overflow, OnError: func(error, time.Duration) {}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				h.Close(ctx)
				if st := h.Stats(); st.Handled > 0 {
					b.ReportMetric(float64(st.Dropped)/float64(st.Handled), "dropped/op")
				}
			})
			return h, nil
		}
	}
	for _, bc := range []struct {
		name string
		new  func(b *testing.B) (slog.Handler, func())
	}{
		{"JSONHandler", func(*testing.B) (slog.Handler, func()) { return slog.NewJSONHandler(io.Discard, nil), nil }},
		{"buffered", func(b *testing.B) (slog.Handler, func()) {
			h := offline(b, nil)
			return h, func() {
				m, _ := h.s.q.take()
				h.s.q.release(m)
			}
		}},
		// The broker is gone and the buffer full: Handle drops, counting.
		{"dropping", func(b *testing.B) (slog.Handler, func()) {
			return offline(b, &Options{BufferRecords: 1}), nil
		}},
		{"broker", live(nil, DropNewest)},
		{"broker-batch", live(&BatchOptions{}, DropNewest)},
		{"delivered", live(nil, Block)},
		{"delivered-batch", live(&BatchOptions{}, Block)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, after := bc.new(b)
			l := slog.New(h).With("svc", "api")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				record(l, ctx)
				if after != nil {
					after()
				}
			}
		})
		// A logger made per request, as l.With("request_id", id) makes it:
		// what WithAttrs costs, beside Handle.
		b.Run(bc.name+"/with-per-record", func(b *testing.B) {
			h, after := bc.new(b)
			l := slog.New(h).With("svc", "api").WithGroup("req")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				record(l.With("id", 42), ctx)
				if after != nil {
					after()
				}
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			h, after := bc.new(b)
			l := slog.New(h).With("svc", "api")
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					record(l, ctx)
					if after != nil {
						after()
					}
				}
			})
		})
	}
}
