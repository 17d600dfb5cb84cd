package amqpconn_test

import (
	"context"
	"errors"
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
