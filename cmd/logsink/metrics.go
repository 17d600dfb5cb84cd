package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logfan/logfan/sink"
	"github.com/logfan/logfan/sink/sinkprom"
)

// serveMetrics serves s's metrics at /metrics and its health at /healthz
// on addr until ctx ends; it returns once it listens, or why it cannot.
func serveMetrics(ctx context.Context, addr string, s *sink.Sink, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(sinkprom.New(s, nil), collectors.NewBuildInfoCollector(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { health(w, s.Stats()) })
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutCtx)
		<-done
	}, nil
}

// health answers 200 only while the sink is connected and its writes
// succeed, so that a supervisor restarts one stuck on either.
func health(w http.ResponseWriter, st sink.Stats) {
	switch {
	case st.Broker == "":
		http.Error(w, "not connected to a broker", http.StatusServiceUnavailable)
	case !st.Writing:
		http.Error(w, "writes are failing", http.StatusServiceUnavailable)
	default:
		fmt.Fprintf(w, "ok: connected to %s, %d records written\n", st.Broker, st.Written)
	}
}
