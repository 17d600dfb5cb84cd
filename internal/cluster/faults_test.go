package cluster

import (
	"testing"
	"time"

	"github.com/logfan/logfan/slogamqp"
)

// failoverBound is generous: the failover itself takes a dial, as the next
// broker of the round is tried at once; the rest is the machine's load.
const failoverBound = 20 * time.Second

func checkFailover(t *testing.T, who string, d time.Duration) {
	t.Helper()
	if d < 0 || d > failoverBound {
		t.Errorf("%s failover took %v, want within %v", who, d, failoverBound)
	}
}

// stopWhilePublishing logs n records through h and stops node n a third
// of the way, returning the failover time of the client whose broker is
// broker.
func (c *cluster) stopWhilePublishing(t *testing.T, h *slogamqp.Handler, records, n int, broker func() string) time.Duration {
	t.Helper()
	third := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		publish(h, records, nil, func(i int) {
			if i == records/3 {
				close(third)
			}
		})
	}()
	<-third
	failover := watchFailover(n, broker)
	c.stop(t, n)
	d := failover()
	<-done
	return d
}

// TestHandlerNodeStops: the node the handler publishes to stops while it
// publishes with confirms into a quorum queue whose sink is on another
// node. The handler fails over, resends what was unconfirmed, and the
// sink's file holds every record exactly once.
func TestHandlerNodeStops(t *testing.T) {
	c := open(t)
	ex, q := name("test-cluster"), name("test-cluster-q")
	c.deleteQueue(t, q)
	h := newHandler(t, ex, c.urls())
	hn := node(h.Stats().Broker)
	s := newSink(t, ex, q, []string{c.url(hn%nodes + 1)})

	const n = 4000
	d := c.stopWhilePublishing(t, h, n, hn, func() string { return h.Stats().Broker })
	closeHandler(t, h)
	checkFailover(t, "the handler's", d)
	o := s.check(t, n)
	o.failover = []time.Duration{d}
	o.log(t, "the handler's node stops")
	if st := h.Stats(); st.Failovers == 0 || node(st.Broker) == hn {
		t.Errorf("handler stats %+v: want a failover away from node %d", st, hn)
	}
}

// TestSinkNodeStops: the node the sink consumes from stops while records
// flow; the quorum queue keeps them, and the sink, failing over, writes
// every one exactly once.
func TestSinkNodeStops(t *testing.T) {
	c := open(t)
	ex, q := name("test-cluster"), name("test-cluster-q")
	c.deleteQueue(t, q)
	s := newSink(t, ex, q, c.urls())
	sn := node(s.Stats().Broker)
	h := newHandler(t, ex, c.urls(sn))

	const n = 4000
	d := c.stopWhilePublishing(t, h, n, sn, func() string { return s.Stats().Broker })
	closeHandler(t, h)
	checkFailover(t, "the sink's", d)
	o := s.check(t, n)
	o.failover = []time.Duration{d}
	o.log(t, "the sink's node stops")
	if st := s.Stats(); st.Failovers == 0 || st.Missed != 0 {
		t.Errorf("sink stats %v: want a failover and nothing missed", st)
	}
}

// TestRollingRestart: every node in turn stops and starts again while
// records flow, as when operators upgrade a cluster, each stop waiting
// until the node is not critical to the queue's quorum. Nothing is lost.
func TestRollingRestart(t *testing.T) {
	c := open(t)
	ex, q := name("test-cluster"), name("test-cluster-q")
	c.deleteQueue(t, q)
	s := newSink(t, ex, q, c.urls())
	h := newHandler(t, ex, c.urls())

	stop := make(chan struct{})
	count := make(chan int)
	go func() { count <- publish(h, 1<<30, stop, nil) }()
	var failovers []time.Duration
	for n := 1; n <= nodes; n++ {
		c.awaitNotCritical(t, n)
		var waits []func() time.Duration
		for _, broker := range []func() string{func() string { return h.Stats().Broker }, func() string { return s.Stats().Broker }} {
			if node(broker()) == n {
				waits = append(waits, watchFailover(n, broker))
			}
		}
		c.stop(t, n)
		for _, wait := range waits {
			d := wait()
			checkFailover(t, "a", d)
			failovers = append(failovers, d)
		}
		c.start(t, n)
	}
	close(stop)
	records := <-count
	closeHandler(t, h)
	o := s.check(t, records)
	o.failover = failovers
	o.log(t, "rolling restart of the three nodes")
}
