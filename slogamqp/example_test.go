package slogamqp_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/logfan/logfan/slogamqp"
)

// Publish every record of a service to the "logs" fanout exchange of the
// broker at $AMQP_URL (default amqp://guest:guest@localhost:5672/).
func Example() {
	h, err := slogamqp.New(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // only a bad configuration fails
		os.Exit(2)
	}
	defer func() {
		// Deliver what is still buffered, for at most five seconds.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	slog.SetDefault(slog.New(h))
	slog.Info("order placed", "id", 42)
}

// Records that cannot reach the broker go to a fallback handler, here
// standard output, and Close says how many there were.
func ExampleOptions_fallback() {
	h, _ := slogamqp.New(&slogamqp.Options{
		URL:     "amqp://guest:guest@127.0.0.1:1/", // nothing listens here
		OnError: func(error, time.Duration) {},
		Fallback: slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{} // for a stable example output
				}
				return a
			},
		}),
	})
	logger := slog.New(h).With("svc", "shop")
	logger.Info("order placed", "id", 42)
	logger.Warn("payment slow", slog.Group("pay", "ms", 1200))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := h.Close(ctx)
	var de *slogamqp.DeliveryError
	if errors.As(err, &de) {
		fmt.Printf("%d of %d records not delivered, %d of them dropped\n", de.Dropped+de.Undelivered, de.Handled, de.Dropped)
	}
	// Output:
	// level=INFO msg="order placed" svc=shop id=42
	// level=WARN msg="payment slow" svc=shop pay.ms=1200
	// 2 of 2 records not delivered, 0 of them dropped
}

// A topic exchange routes each record by its level, so a consumer can bind
// to "error" alone.
func ExampleOptions_topic() {
	h, err := slogamqp.New(&slogamqp.Options{
		Exchange:     "logs.by-level",
		ExchangeKind: "topic",
		Durable:      true,
		Persistent:   true,
	})
	if err != nil {
		panic(err)
	}
	defer h.Close(context.Background())
	slog.New(h).Error("disk full") // routing key "error"
}
