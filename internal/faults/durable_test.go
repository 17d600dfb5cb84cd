package faults

import (
	"testing"

	"github.com/logfan/logfan/internal/brokertest"
)

// The matrix's sink faults again, with the durable sinks: a quorum queue
// (logsink -queue) and a stream (logsink -stream), each with its state
// beside its file. Neither may lose a record the handler delivered.

func durableRig(t *testing.T, mode string) *rig {
	t.Helper()
	url := enabled(t)
	r := newRig(t, url, rigOptions{sinkMode: mode})
	r.sinkConnected()
	r.log(100)
	r.delivered()
	return r
}

func expectNothingLost(t *testing.T, f figures) {
	t.Helper()
	if f.lost != 0 || f.dropped != 0 {
		t.Errorf("lost %d, dropped %d", f.lost, f.dropped)
	}
}

// 2q. Every connection closed ten times, with a -queue sink.
func TestFault2qCloseAllConnectionsQueueSink(t *testing.T) {
	r := durableRig(t, "queue")
	for range 10 {
		rabbitmqctl(t, "close_all_connections", "-p", brokertest.Vhost(), "logfan fault test")
		r.log(300)
		r.sinkConnected()
	}
	r.clear()
	expectNothingLost(t, r.finish("2q. close_all_connections x10, -queue sink"))
}

// 3q. Broker restart with the durable setup: a durable exchange,
// persistent messages, a quorum queue. (A stream is not asserted here: on
// RabbitMQ 3.10 a stream comes back up to a second after start_app, its
// declaration answering 404 meanwhile, and what a producer publishes in
// that second is confirmed and lost; see the README.)
func TestFault3qBrokerRestartQueueSink(t *testing.T) {
	brokerRestart(t, "queue", "3q. broker restart, -queue sink")
}

func brokerRestart(t *testing.T, mode, fault string) {
	r := durableRig(t, mode)
	stopApp(t)
	r.log(500)
	startApp(t)
	r.clear()
	r.sinkConnected()
	expectNothingLost(t, r.finish(fault))
}

// 9q and 9s. The sink stopped while records flow, and started again.
func TestFault9qSinkRestartQueueSink(t *testing.T) {
	sinkRestart(t, "queue", "9q. sink restart, -queue sink")
}

func TestFault9sSinkRestartStreamSink(t *testing.T) {
	sinkRestart(t, "stream", "9s. sink restart, -stream sink")
}

func sinkRestart(t *testing.T, mode, fault string) {
	r := durableRig(t, mode)
	r.log(400)
	r.stopSink()
	r.log(500) // while no sink runs
	r.delivered()
	r.startSink(rigOptions{sinkURL: r.url, sinkMode: mode, sinkPath: r.path})
	r.sinkConnected()
	r.clear()
	expectNothingLost(t, r.finish(fault))
}
