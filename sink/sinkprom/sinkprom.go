// Package sinkprom exposes a sink's counters as Prometheus metrics, in a
// package of its own so that importing sink alone never pulls in
// client_golang. logsink -metrics serves them.
package sinkprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logfan/logfan/internal/promstats"
	"github.com/logfan/logfan/sink"
)

type metric = promstats.Metric[sink.Stats]

var metrics = []metric{
	{Name: "received_records_total", Help: "Messages received from the broker.", Value: func(s sink.Stats) float64 { return float64(s.Received) }},
	{Name: "written_records_total", Help: "Records written to every output.", Value: func(s sink.Stats) float64 { return float64(s.Written) }},
	{Name: "malformed_records_total", Help: "Records whose body was not a clean record (written anyway).", Value: func(s sink.Stats) float64 { return float64(s.Malformed) }},
	{Name: "duplicate_records_total", Help: "Records received again and not written.", Value: func(s sink.Stats) float64 { return float64(s.Duplicates) }},
	{Name: "filtered_records_total", Help: "Records below the sink's level.", Value: func(s sink.Stats) float64 { return float64(s.Filtered) }},
	{Name: "missed_records_total", Help: "Records producers published that this sink did not receive.", Value: func(s sink.Stats) float64 { return float64(s.Missed) }},
	{Name: "torn_lines_total", Help: "Lines a failed write left cut in an output (each written again whole).", Value: func(s sink.Stats) float64 { return float64(s.Torn) }},
	{Name: "reconnects_total", Help: "Connections after the first.", Value: func(s sink.Stats) float64 { return float64(s.Reconnects) }},
	{Name: "failovers_total", Help: "Connections to another broker than the one before.", Value: func(s sink.Stats) float64 { return float64(s.Failovers) }},
	{Name: "write_errors_total", Help: "Failed writes to an output, each retried.", Value: func(s sink.Stats) float64 { return float64(s.WriteErrors) }},
	{Name: "unacknowledged_records", Help: "Records received and not yet written, held unacknowledged.", Gauge: true, Value: func(s sink.Stats) float64 { return float64(s.Held) }},
	{Name: "last_write_timestamp_seconds", Help: "When records were last written (Unix time), 0 before the first.", Gauge: true, Value: func(s sink.Stats) float64 {
		if s.LastWrite.IsZero() {
			return 0
		}
		return float64(s.LastWrite.UnixNano()) / 1e9
	}},
	{Name: "connected", Help: "1 while the sink is connected to a broker.", Gauge: true, Value: func(s sink.Stats) float64 { return promstats.Bool(s.Broker != "") }},
	{Name: "writing", Help: "0 while writes to an output are failing.", Gauge: true, Value: func(s sink.Stats) float64 { return promstats.Bool(s.Writing) }},
}

// New is a collector of s's counters, named logsink_*, with labels on
// every metric (nil for none). Keep labels few and fixed: never one per
// producer.
func New(s *sink.Sink, labels prometheus.Labels) prometheus.Collector {
	return promstats.New("logsink", labels, s.Stats, metrics)
}
