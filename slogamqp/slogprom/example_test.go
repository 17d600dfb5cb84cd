package slogprom_test

import (
	"log"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logfan/logfan/slogamqp"
	"github.com/logfan/logfan/slogamqp/slogprom"
)

// Register the handler's metrics beside the program's own, and serve them.
func Example() {
	h, err := slogamqp.New(nil)
	if err != nil {
		log.Fatal(err)
	}
	slog.SetDefault(slog.New(h))
	prometheus.MustRegister(slogprom.New(h, nil))
	http.Handle("/metrics", promhttp.Handler())
}
