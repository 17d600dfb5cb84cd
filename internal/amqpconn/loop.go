package amqpconn

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff says how long to wait between attempts to connect.
type Backoff struct {
	Initial time.Duration // first wait; zero means 100ms
	Max     time.Duration // longest wait, and the wait after a refusal; zero means 30s
}

func (b Backoff) new() *backoff.ExponentialBackOff {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = orDefault(b.Initial, 100*time.Millisecond)
	eb.MaxInterval = orDefault(b.Max, 30*time.Second)
	if eb.MaxInterval < eb.InitialInterval {
		eb.MaxInterval = eb.InitialInterval
	}
	// The default gives up after 15 minutes; a log shipper never does.
	eb.MaxElapsedTime = 0
	eb.Reset()
	return eb
}

// ErrDone is returned by a Session that has finished its work: Run closes
// the connection gracefully, so that the broker takes every frame sent
// before, and returns without reconnecting.
var ErrDone = errors.New("session done")

// Session is one connected stretch of work. It calls ready once its topology
// is declared, which resets the backoff, and returns when the connection or
// its channel is lost, or when ctx is done.
type Session func(ctx context.Context, conn *Conn, ready func()) error

// Run connects, runs session, and after every failure waits with jittered
// exponential backoff before connecting again, until ctx is done. A refusal
// that retrying cannot fix waits the maximum interval, never less, so a
// misconfigured client does not hammer the broker. Every failure is passed
// to report with the wait before the next attempt.
func Run(ctx context.Context, cfg Config, b Backoff, session Session, report func(err error, retryIn time.Duration)) {
	eb := b.new()
	for ctx.Err() == nil {
		err := attempt(ctx, cfg, session, eb.Reset)
		if ctx.Err() != nil || errors.Is(err, ErrDone) {
			return
		}
		wait := eb.NextBackOff()
		if IsRefused(err) {
			wait = eb.MaxInterval
		}
		report(err, wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

func attempt(ctx context.Context, cfg Config, session Session, ready func()) error {
	conn, err := Dial(cfg)
	if err != nil {
		return Classify(err)
	}
	// Closing the socket is the one way to end a write blocked by a broker
	// that stopped reading.
	stop := context.AfterFunc(ctx, conn.Abort)
	defer stop()
	defer func() {
		if conn.CloseDeadline(time.Now().Add(2*time.Second)) != nil {
			conn.Abort()
		}
	}()
	return RedactError(Classify(session(ctx, conn, ready)), cfg.URL)
}
