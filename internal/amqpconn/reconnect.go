package amqpconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// healthyAfter is how long a session must last before the backoff starts
// again from its first wait. A session that fails sooner (a broker that
// accepts and then drops every connection, a channel error on the first
// publish) keeps backing off instead of reconnecting every first wait.
const healthyAfter = 5 * time.Second

// ErrDone is returned by a Session that has finished its work: Run closes
// the connection gracefully, so that the broker takes every frame sent
// before, and returns without reconnecting.
var ErrDone = errors.New("session done")

// Session is one connected stretch of work. It calls ready once its topology
// is declared, and returns when the connection or its channel is lost, or
// when ctx is done.
type Session func(ctx context.Context, conn *Conn, ready func()) error

// Loop is a reconnect loop: what Run needs besides the context.
type Loop struct {
	Config Config
	// URLs are the brokers, tried in turn from a random one (so that many
	// clients spread over a cluster's nodes). Empty means Config.URL.
	URLs    []string
	Backoff Backoff
	Session Session
	// Report is told of every failure, naming the broker, with the wait
	// before the next attempt: none while a round over the brokers goes on.
	Report func(err error, retryIn time.Duration)
	// Finished, when not nil, is asked between attempts, and whenever Wake
	// fires during a wait, whether there is nothing left to do: then Run
	// returns without connecting again.
	Finished func() bool
	Wake     <-chan struct{}
}

// Run connects, runs the session, and after every failure connects to the
// next broker, until ctx is done or the loop is finished. The backoff is per
// round over the brokers: a failure waits, with jittered exponential
// backoff, only once every broker has failed since the last healthy session,
// so a failover is immediate and a cluster that is wholly down is not
// hammered. A refusal that retrying cannot fix waits the maximum interval,
// never less, so a misconfigured client does not hammer the broker. The
// backoff starts again from its first wait only after a session that was
// ready and lasted healthyAfter.
func (l Loop) Run(ctx context.Context) {
	urls := l.URLs
	if len(urls) == 0 {
		urls = []string{l.Config.URL}
	}
	eb := l.Backoff.new()
	next, failed := rand.IntN(len(urls)), 0
	last := "" // the broker of the last connection
	for ctx.Err() == nil && !l.finished() {
		cfg := l.Config
		cfg.URL, next = urls[next], (next+1)%len(urls)
		start := time.Now()
		ready := false
		err := attempt(ctx, cfg, l.Session, &last, func() { ready = true })
		if ctx.Err() != nil || errors.Is(err, ErrDone) {
			return
		}
		if ready && time.Since(start) >= healthyAfter {
			eb.Reset()
			failed = 0
		}
		var wait time.Duration
		if failed++; failed >= len(urls) || IsRefused(err) {
			wait, failed = eb.NextBackOff(), 0
		}
		if IsRefused(err) {
			wait = eb.MaxInterval
		}
		l.Report(fmt.Errorf("%s: %w", Redact(cfg.URL), err), wait)
		if wait > 0 && !l.sleep(ctx, wait) {
			return
		}
	}
}

func (l Loop) finished() bool { return l.Finished != nil && l.Finished() }

// sleep waits for d, and reports whether Run should go on.
func (l Loop) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	wake := l.Wake
	for {
		select {
		case <-t.C:
			return true
		case <-wake:
			if l.finished() {
				return false
			}
			wake = nil // fired once, as a closed channel does forever
		case <-ctx.Done():
			return false
		}
	}
}

// attempt runs one session on a connection to cfg.URL; last is the URL of
// the connection before, which it updates.
func attempt(ctx context.Context, cfg Config, session Session, last *string, ready func()) error {
	conn, err := Dial(ctx, cfg)
	if err != nil {
		return Classify(err)
	}
	conn.Failover = *last != "" && *last != cfg.URL
	*last = cfg.URL
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
