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
// io.Discard, the floor, and through a Handler whose publisher drains to
// the real broker. Compare the two lines of one run:
//
//	go test -run '^$' -bench Handle -benchmem -count 10 ./slogamqp | tee new.txt
func BenchmarkHandle(b *testing.B) {
	url := brokertest.URL(b)
	handlers := []struct {
		name string
		new  func(b *testing.B) slog.Handler
	}{
		{"JSONHandler", func(*testing.B) slog.Handler { return slog.NewJSONHandler(io.Discard, nil) }},
		{"slogamqp", func(b *testing.B) slog.Handler {
			h, err := New(&Options{URL: url, Exchange: brokertest.Name("bench"), OnError: func(error, time.Duration) {}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				h.Close(ctx)
			})
			return h
		}},
	}
	for _, hc := range handlers {
		for _, parallel := range []bool{false, true} {
			name := hc.name
			if parallel {
				name += "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				l := slog.New(hc.new(b)).With("svc", "api")
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				if !parallel {
					for b.Loop() {
						l.LogAttrs(ctx, slog.LevelInfo, "request served", slog.String("path", "/api/v1/orders"), slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond))
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						l.LogAttrs(ctx, slog.LevelInfo, "request served", slog.String("path", "/api/v1/orders"), slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond))
					}
				})
			})
		}
	}
}
