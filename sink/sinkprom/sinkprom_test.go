package sinkprom_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/logfan/logfan/sink"
	"github.com/logfan/logfan/sink/sinkprom"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMetricsOfANewSink: a sink not yet run is not connected, has written
// nothing, and its metrics pass Prometheus's lint. (cmd/logsink's test
// scrapes a running one.)
func TestMetricsOfANewSink(t *testing.T) {
	s, err := sink.New(&sink.Options{URL: "amqp://guest:guest@127.0.0.1:1/", Outputs: []sink.Output{sink.NewScreen(&strings.Builder{}, sink.FormatJSON, false)}})
	if err != nil {
		t.Fatal(err)
	}
	c := sinkprom.New(s, nil)
	want := `
# HELP logsink_connected 1 while the sink is connected to a broker.
# TYPE logsink_connected gauge
logsink_connected 0
# HELP logsink_writing 0 while writes to an output are failing.
# TYPE logsink_writing gauge
logsink_writing 1
# HELP logsink_last_write_timestamp_seconds When records were last written (Unix time), 0 before the first.
# TYPE logsink_last_write_timestamp_seconds gauge
logsink_last_write_timestamp_seconds 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "logsink_connected", "logsink_writing", "logsink_last_write_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 14 {
		t.Errorf("%d metrics, want 14", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
