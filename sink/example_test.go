package sink_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/logfan/logfan/sink"
)

// Run a sink that writes every record of the "logs" exchange to a rotating
// file and shows it on standard error, until interrupted.
func Example() {
	file, err := sink.NewFile(sink.FileOptions{Path: "logs/app.log", MaxSizeMB: 100, MaxBackups: 10, Compress: true})
	if err != nil {
		panic(err)
	}
	s, err := sink.New(&sink.Options{Outputs: []sink.Output{
		file,
		sink.NewScreen(os.Stderr, sink.FormatText, sink.UseColor(os.Stderr)),
	}})
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// Decode takes any body: a record from slogamqp, or the plain text that
// the RabbitMQ tutorial's emit_log.py sends. AppendText shows it safely.
func ExampleDecode() {
	received := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for _, body := range []string{
		`{"time":"2026-11-29T09:00:01.5Z","level":"WARN","msg":"disk almost full","disk":{"dev":"sda1","pct":93}}`,
		"Info: Hello World",
		"evil \x1b[2J\r\nforged line",
	} {
		r := sink.Decode([]byte(body), "", received, 1<<20)
		fmt.Print(string(sink.AppendText(nil, &r, false)))
	}
	// Output:
	// 2026-11-29T09:00:01.500Z WARN  disk almost full disk.dev=sda1 disk.pct=93
	// 2026-11-29T09:00:00.000Z INFO  Info: Hello World
	// 2026-11-29T09:00:00.000Z INFO  evil \x1b[2J\r\nforged line
}
