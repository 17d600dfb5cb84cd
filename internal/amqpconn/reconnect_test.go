package amqpconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/brokertest"
)

// TestBackoffGrowsWhileSessionsFailAtOnce: a session that is ready and
// fails at once (a nack storm, a channel error on the first publish) must
// not reset the backoff, or the client reconnects every first wait
// forever.
func TestBackoffGrowsWhileSessionsFailAtOnce(t *testing.T) {
	url := brokertest.URL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const initial = 10 * time.Millisecond
	var waits []time.Duration
	amqpconn.Loop{
		Config:  amqpconn.Config{URL: url},
		Backoff: amqpconn.Backoff{Initial: initial, Max: time.Second},
		Session: func(_ context.Context, _ *amqpconn.Conn, ready func()) error {
			ready()
			return errors.New("failed at once")
		},
		Report: func(_ error, retryIn time.Duration) {
			if waits = append(waits, retryIn); len(waits) == 8 {
				cancel()
			}
		},
	}.Run(ctx)
	// Exponential with a factor of 1.5 and ±50% jitter: the eighth wait is
	// at least 0.5 × 1.5^7 ≈ 8.5 times the first interval.
	if last := waits[len(waits)-1]; last < 8*initial {
		t.Errorf("waits %v: the backoff was reset by sessions that failed at once", waits)
	}
}

// TestLoopFinishesWhenWoken: a loop waiting between attempts returns as
// soon as Wake fires and Finished agrees, instead of sleeping out the wait.
func TestLoopFinishesWhenWoken(t *testing.T) {
	wake := make(chan struct{})
	done := make(chan struct{})
	reported := make(chan struct{}, 1)
	go func() {
		defer close(done)
		amqpconn.Loop{
			Config:   amqpconn.Config{URL: "amqp://guest:guest@" + brokertest.FreeAddr(t) + "/"},
			Backoff:  amqpconn.Backoff{Initial: time.Hour, Max: time.Hour},
			Session:  func(context.Context, *amqpconn.Conn, func()) error { return nil },
			Report:   func(error, time.Duration) { reported <- struct{}{} },
			Finished: func() bool { return isClosed(wake) },
			Wake:     wake,
		}.Run(context.Background())
	}()
	<-reported // it failed to connect and waits an hour
	close(wake)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the loop slept on after Wake")
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestBackoffIsPerRound: with three brokers down, the loop tries each once
// without waiting, then waits; a cluster that is wholly down is not
// hammered, and one node down costs no wait at all.
func TestBackoffIsPerRound(t *testing.T) {
	urls := []string{deadURL(t), deadURL(t), deadURL(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	var brokers []string
	amqpconn.Loop{
		URLs:    urls,
		Backoff: amqpconn.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Session: func(context.Context, *amqpconn.Conn, func()) error { return nil },
		Report: func(err error, retryIn time.Duration) {
			brokers = append(brokers, strings.SplitN(err.Error(), ": ", 2)[0])
			if waits = append(waits, retryIn); len(waits) == 9 {
				cancel()
			}
		},
	}.Run(ctx)
	for i, w := range waits {
		if round := i%3 == 2; round != (w > 0) {
			t.Fatalf("waits %v: want a wait after every third failure only", waits)
		}
	}
	for i := 3; i < len(brokers); i++ {
		if brokers[i] != brokers[i-3] {
			t.Fatalf("brokers tried %v: want each in turn", brokers)
		}
	}
	if brokers[0] == brokers[1] || brokers[1] == brokers[2] || brokers[0] == brokers[2] {
		t.Fatalf("brokers tried %v: want every broker in each round", brokers)
	}
}

// TestLoopStartsAtARandomBroker: many clients given one list spread over
// its brokers instead of all crowding the first.
func TestLoopStartsAtARandomBroker(t *testing.T) {
	urls := []string{deadURL(t), deadURL(t), deadURL(t)}
	first := map[string]int{}
	for range 30 {
		ctx, cancel := context.WithCancel(context.Background())
		amqpconn.Loop{
			URLs:    urls,
			Session: func(context.Context, *amqpconn.Conn, func()) error { return nil },
			Report: func(err error, _ time.Duration) {
				first[strings.SplitN(err.Error(), ": ", 2)[0]]++
				cancel()
			},
		}.Run(ctx)
		cancel()
	}
	// All 30 on one broker has a chance of 3 × (1/3)^30.
	if len(first) < 2 {
		t.Fatalf("first brokers %v: every loop started at the same one", first)
	}
}

// TestConnSaysFailover: a connection to another broker than the last is a
// failover, and names its broker without the password.
func TestConnSaysFailover(t *testing.T) {
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	other := brokertest.WithHost(t, url, p.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conns []*amqpconn.Conn
	amqpconn.Loop{
		URLs:    []string{url, other},
		Backoff: amqpconn.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		Session: func(_ context.Context, c *amqpconn.Conn, _ func()) error {
			if conns = append(conns, c); len(conns) == 3 {
				cancel()
			}
			return errors.New("next")
		},
		Report: func(error, time.Duration) {},
	}.Run(ctx)
	if conns[0].Failover || !conns[1].Failover || !conns[2].Failover {
		t.Errorf("failover flags %v %v %v: want false, true, true", conns[0].Failover, conns[1].Failover, conns[2].Failover)
	}
	for _, c := range conns {
		if strings.Contains(c.Broker, "guest:guest") || !strings.Contains(c.Broker, "***") {
			t.Errorf("Broker %q: want the password hidden", c.Broker)
		}
	}
}

func deadURL(t *testing.T) string { return "amqp://guest:guest@" + brokertest.FreeAddr(t) + "/" }
