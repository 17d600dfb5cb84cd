// Command emitlog publishes log records to the "logs" exchange from the
// shell: what the RabbitMQ tutorial's emit_log.py should have been.
//
//	emitlog [flags] message words [key=value ...]
//	tail -f app.log | emitlog [flags]
//
// It exits 0 only once the broker has confirmed every record.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/cli"
	"github.com/logfan/logfan/slogamqp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdin, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func exitCode(err error, stderr io.Writer) int { return cli.ExitCode("emitlog", err, stderr) }

// Run is the whole command, testable in-process: args without the program
// name; records come from args, or from stdin when args hold no message.
func Run(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	fs := flag.NewFlagSet("emitlog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "", "broker `URL` (default $AMQP_URL, else "+amqpconn.Redact(amqpconn.DefaultURL)+")")
	exchange := fs.String("exchange", "logs", "fanout `exchange` to publish to")
	level := fs.String("level", "info", "`level` of the records: debug, info, warn, error, or e.g. warn+2")
	timeout := fs.Duration("timeout", 10*time.Second, "give up when the broker has not confirmed every record within this `duration`")
	fs.Usage = func() {} // a bad flag gets one line, from exitCode
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: emitlog [flags] message words [key=value ...]\n"+
				"       command | emitlog [flags]    (one record per line)\n\n"+
				"Publishes log records to RabbitMQ and exits 0 once the broker confirmed them.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return cli.Usage(err)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return cli.Usage(fmt.Errorf("invalid -level %q: want debug, info, warn or error", *level))
	}
	if *timeout <= 0 {
		return cli.Usage(fmt.Errorf("invalid -timeout %v: want a positive duration", *timeout))
	}

	var lastErr error
	h, err := slogamqp.New(&slogamqp.Options{
		URL:      *url,
		Exchange: *exchange,
		AppID:    "emitlog",
		Level:    slog.LevelDebug,
		OnError: func(err error, retryIn time.Duration) {
			lastErr = err
			fmt.Fprintf(stderr, "emitlog: %v (retrying in %v)\n", err, retryIn.Round(time.Millisecond))
		},
	})
	if err != nil {
		return cli.Usage(err)
	}
	logger := slog.New(h)
	if fs.NArg() > 0 {
		msg, attrs := SplitArgs(fs.Args())
		logger.LogAttrs(ctx, lv, msg, attrs...)
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := strings.TrimRight(sc.Text(), "\r"); line != "" {
				logger.LogAttrs(ctx, lv, line)
			}
		}
		if err := sc.Err(); err != nil {
			defer func() { fmt.Fprintf(stderr, "emitlog: reading stdin: %v\n", err) }()
		}
	}

	closeCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := h.Close(closeCtx); err != nil {
		if lastErr != nil {
			return fmt.Errorf("%w; last broker error: %v", err, lastErr)
		}
		return err
	}
	return nil
}

// SplitArgs splits command-line words into the message and the attributes
// given as key=value at the end.
func SplitArgs(words []string) (msg string, attrs []slog.Attr) {
	i := len(words)
	for i > 0 {
		k, _, ok := strings.Cut(words[i-1], "=")
		if !ok || !isKey(k) {
			break
		}
		i--
	}
	for _, w := range words[i:] {
		k, v, _ := strings.Cut(w, "=")
		attrs = append(attrs, slog.String(k, v))
	}
	return strings.Join(words[:i], " "), attrs
}

// isKey accepts the keys people type: letters, digits, '_', '-' and '.',
// so that "1+1=2" stays part of the message.
func isKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
