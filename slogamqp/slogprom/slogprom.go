// Package slogprom exposes a handler's Stats as Prometheus metrics, in a
// package of its own so that importing slogamqp alone never pulls in
// client_golang.
package slogprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logfan/logfan/internal/promstats"
	"github.com/logfan/logfan/slogamqp"
)

type metric = promstats.Metric[slogamqp.Stats]

func count(f func(slogamqp.Stats) uint64) func(slogamqp.Stats) float64 {
	return func(s slogamqp.Stats) float64 { return float64(f(s)) }
}

var metrics = []metric{
	{Name: "handled_records_total", Help: "Records given to Handle.", Value: count(func(s slogamqp.Stats) uint64 { return s.Handled })},
	{Name: "published_records_total", Help: "Records sent to the broker, each counted once.", Value: count(func(s slogamqp.Stats) uint64 { return s.Published })},
	{Name: "confirmed_records_total", Help: "Records the broker confirmed (with confirms off, records sent).", Value: count(func(s slogamqp.Stats) uint64 { return s.Confirmed })},
	{Name: "dropped_records_total", Help: "Records dropped because the buffer was full or the handler closed.", Value: count(func(s slogamqp.Stats) uint64 { return s.Dropped })},
	{Name: "resent_records_total", Help: "Sends of records left unconfirmed by a lost connection, or nacked.", Value: count(func(s slogamqp.Stats) uint64 { return s.Resent })},
	{Name: "nacks_total", Help: "Nacks from the broker.", Value: count(func(s slogamqp.Stats) uint64 { return s.Nacked })},
	{Name: "undelivered_records_total", Help: "Records given up: nacked past every retry, or held when Close gave up.", Value: count(func(s slogamqp.Stats) uint64 { return s.Undelivered })},
	{Name: "drop_reports_total", Help: "\"records dropped\" records published.", Value: count(func(s slogamqp.Stats) uint64 { return s.DropReports })},
	{Name: "reconnects_total", Help: "Connections made after the first.", Value: count(func(s slogamqp.Stats) uint64 { return s.Reconnects })},
	{Name: "failovers_total", Help: "Connections made to another broker than the one before.", Value: count(func(s slogamqp.Stats) uint64 { return s.Failovers })},
	{Name: "buffered_records", Help: "Records held now, waiting to be sent or confirmed.", Gauge: true, Value: count(func(s slogamqp.Stats) uint64 { return s.Buffered })},
	{Name: "connected", Help: "1 while a channel to the broker is open.", Gauge: true, Value: func(s slogamqp.Stats) float64 { return promstats.Bool(s.Connected) }},
}

// New is a collector of h's Stats, named slogamqp_*, with labels on every
// metric (nil for none; a label per handler if a program runs several).
func New(h *slogamqp.Handler, labels prometheus.Labels) prometheus.Collector {
	return promstats.New("slogamqp", labels, h.Stats, metrics)
}
