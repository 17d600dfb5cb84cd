package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/sink"
)

// TestMetricsAndHealth scrapes a running logsink: its counters in the
// Prometheus text format, and /healthz, 200 while connected and 503 once
// its broker is gone.
func TestMetricsAndHealth(t *testing.T) {
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	ex := brokertest.Name("test-metrics")
	addr := brokertest.FreeAddr(t)
	stderr := newWatcher("connected")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"-url", brokertest.WithHost(t, url, p.Addr()), "-exchange", ex, "-metrics", addr, "-stdout"}, io.Discard, stderr, make(chan os.Signal))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stderr.next(t)
	for range 3 {
		emit(t, url, ex, "counted")
	}
	brokertest.WaitFor(t, wait, "three records written", func() bool { return metric(t, addr, "logsink_written_records_total") == 3 })
	if got := metric(t, addr, "logsink_connected"); got != 1 {
		t.Errorf("logsink_connected = %v, want 1", got)
	}
	if got := metric(t, addr, "logsink_last_write_timestamp_seconds"); got == 0 {
		t.Error("logsink_last_write_timestamp_seconds is 0 after a write")
	}
	if got := metric(t, addr, "go_build_info"); got != 1 {
		t.Errorf("go_build_info = %v, want 1", got)
	}
	if code := healthz(t, addr); code != http.StatusOK {
		t.Errorf("/healthz: %d while connected, want 200", code)
	}
	p.Refuse(true)
	p.Cut()
	brokertest.WaitFor(t, wait, "/healthz to fail without a broker", func() bool { return healthz(t, addr) == http.StatusServiceUnavailable })
	if got := metric(t, addr, "logsink_connected"); got != 0 {
		t.Errorf("logsink_connected = %v without a broker, want 0", got)
	}
}

// metric scrapes addr and returns the value of the one sample named name.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	f, ok := families[name]
	if !ok || len(f.Metric) != 1 {
		t.Fatalf("/metrics has no single %s", name)
	}
	return value(f.GetType(), f.Metric[0])
}

func value(kind dto.MetricType, m *dto.Metric) float64 {
	switch kind {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

func healthz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHealthSaysWhy: /healthz fails while writes fail, as while not
// connected, and says which.
func TestHealthSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		st   sink.Stats
		code int
		why  string
	}{
		{sink.Stats{Broker: "amqp://guest:***@b/", Writing: true}, http.StatusOK, "ok: connected"},
		{sink.Stats{Writing: true}, http.StatusServiceUnavailable, "not connected"},
		{sink.Stats{Broker: "amqp://guest:***@b/"}, http.StatusServiceUnavailable, "writes are failing"},
	} {
		w := httptest.NewRecorder()
		health(w, tc.st)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.why) {
			t.Errorf("%+v: %d %q, want %d %q", tc.st, w.Code, w.Body.String(), tc.code, tc.why)
		}
	}
}
