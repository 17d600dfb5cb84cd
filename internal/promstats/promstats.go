// Package promstats turns a Stats snapshot into Prometheus metrics: one
// snapshot per scrape, so that the metrics of a scrape agree.
package promstats

import "github.com/prometheus/client_golang/prometheus"

// Metric is one value of a snapshot S.
type Metric[S any] struct {
	Name, Help string
	Gauge      bool // else a counter
	Value      func(S) float64
}

type collector[S any] struct {
	stats   func() S
	metrics []Metric[S]
	descs   []*prometheus.Desc
}

// New is a collector of metrics, named namespace_Name, over stats.
func New[S any](namespace string, labels prometheus.Labels, stats func() S, metrics []Metric[S]) prometheus.Collector {
	c := &collector[S]{stats: stats, metrics: metrics}
	for _, m := range metrics {
		c.descs = append(c.descs, prometheus.NewDesc(prometheus.BuildFQName(namespace, "", m.Name), m.Help, nil, labels))
	}
	return c
}

func (c *collector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for i, m := range c.metrics {
		kind := prometheus.CounterValue
		if m.Gauge {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], kind, m.Value(s))
	}
}

// Bool is 1 for true.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
