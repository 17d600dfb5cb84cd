package slogprom_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/logfan/logfan/slogamqp"
	"github.com/logfan/logfan/slogamqp/slogprom"
)

// TestCollectsStats: the metrics are the handler's Stats, here of one
// whose broker never answers, so that its records stay buffered.
func TestCollectsStats(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h, err := slogamqp.New(&slogamqp.Options{URL: "amqp://guest:guest@" + addr + "/", OnError: func(error, time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		h.Close(ctx)
	}()
	for range 3 {
		slog.New(h).Info("held")
	}
	want := `
# HELP slogamqp_buffered_records Records held now, waiting to be sent or confirmed.
# TYPE slogamqp_buffered_records gauge
slogamqp_buffered_records{service="api"} 3
# HELP slogamqp_connected 1 while a channel to the broker is open.
# TYPE slogamqp_connected gauge
slogamqp_connected{service="api"} 0
# HELP slogamqp_handled_records_total Records given to Handle.
# TYPE slogamqp_handled_records_total counter
slogamqp_handled_records_total{service="api"} 3
# HELP slogamqp_published_records_total Records sent to the broker, each counted once.
# TYPE slogamqp_published_records_total counter
slogamqp_published_records_total{service="api"} 0
`
	c := slogprom.New(h, map[string]string{"service": "api"})
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"slogamqp_buffered_records", "slogamqp_connected", "slogamqp_handled_records_total", "slogamqp_published_records_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 12 {
		t.Errorf("%d metrics, want 12", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
