// Command logsink receives the records published to the "logs" exchange
// and writes them to the screen or to rotating files: what the RabbitMQ
// tutorial's receive_logs.py should have been. Every running logsink gets
// every record.
//
//	logsink                         # text on standard error
//	logsink -file logs/app.log      # NDJSON on disk, rotated by size
//
// Signals: SIGINT or SIGTERM stop it after writing and acknowledging what
// it received (a second one exits at once), SIGHUP reopens the file,
// SIGUSR1 prints its statistics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/cli"
	"github.com/logfan/logfan/sink"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	err := Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, signals)
	os.Exit(exitCode(err, os.Stderr))
}

// errAborted is a second stop signal: exit at once.
var errAborted = errors.New("aborted by a second signal")

func exitCode(err error, stderr io.Writer) int { return cli.ExitCode("logsink", err, stderr) }

const usage = `Usage: logsink [flags]

Binds a fresh exclusive queue to the exchange and writes every record to the
screen (text on standard error by default) or, with -file, to a file of one
JSON object per line, rotated by size. SIGHUP reopens the file, SIGUSR1
prints statistics, SIGINT or SIGTERM stop after acknowledging what was
written.

Flags:
`

// Run is the whole command, testable in-process. signals carries what
// main subscribed to; ctx ending stops it as SIGTERM does.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, signals <-chan os.Signal) error {
	fs := flag.NewFlagSet("logsink", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	url := fs.String("url", "", "broker `URL` (default $AMQP_URL, else "+amqpconn.Redact(amqpconn.DefaultURL)+")")
	exchange := fs.String("exchange", "logs", "`exchange` to bind to, declared fanout and non-durable as the producers do")
	file := fs.String("file", "", "write NDJSON records to this `path` (then no screen output unless -stderr or -stdout)")
	maxSize := fs.Int("max-size", 100, "rotate the file past this many `megabytes`")
	maxBackups := fs.Int("max-backups", 0, "keep at most this many rotated `files` (0: all)")
	maxAge := fs.Int("max-age", 0, "delete rotated files older than this many `days` (0: never)")
	compress := fs.Bool("compress", false, "gzip rotated files")
	fileMode := fs.String("file-mode", "0640", "permission `bits` of new files, in octal")
	toStderr := fs.Bool("stderr", false, "show records on standard error (the default without -file)")
	toStdout := fs.Bool("stdout", false, "show records on standard output")
	format := fs.String("format", sink.FormatText, "screen `format`: text or json")
	level := fs.String("level", "", "drop records below this `level`: debug, info, warn, error (default: keep all)")
	prefetch := fs.Int("prefetch", 1000, "unacknowledged `records` the broker may send ahead")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return cli.Usage(err)
	}
	if fs.NArg() > 0 {
		return cli.Usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *format != sink.FormatText && *format != sink.FormatJSON {
		return cli.Usage(fmt.Errorf("invalid -format %q: want text or json", *format))
	}
	if *maxSize <= 0 || *maxBackups < 0 || *maxAge < 0 || *prefetch <= 0 {
		return cli.Usage(errors.New("-max-size and -prefetch must be positive, -max-backups and -max-age not negative"))
	}
	mode, err := strconv.ParseUint(*fileMode, 8, 32)
	if err != nil || mode > 0o777 || mode == 0 {
		return cli.Usage(fmt.Errorf("invalid -file-mode %q: want octal permission bits such as 0640", *fileMode))
	}
	var minLevel slog.Leveler
	if *level != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return cli.Usage(fmt.Errorf("invalid -level %q: want debug, info, warn or error", *level))
		}
		minLevel = lv
	}

	var outputs []sink.Output
	screen := func(f *os.File, w io.Writer) {
		color := f != nil && sink.UseColor(f)
		outputs = append(outputs, sink.NewScreen(w, *format, color))
	}
	if *toStderr || (*file == "" && !*toStdout) {
		f, _ := stderr.(*os.File)
		screen(f, stderr)
	}
	if *toStdout {
		f, _ := stdout.(*os.File)
		screen(f, stdout)
	}
	if *file != "" {
		out, err := sink.NewFile(sink.FileOptions{Path: *file, MaxSizeMB: *maxSize, MaxBackups: *maxBackups, MaxAgeDays: *maxAge, Compress: *compress, Mode: os.FileMode(mode)})
		if err != nil {
			return cli.Usage(fmt.Errorf("cannot write -file: %w", err))
		}
		outputs = append(outputs, out)
	}

	s, err := sink.New(&sink.Options{URL: *url, Exchange: *exchange, Outputs: outputs, Level: minLevel, Prefetch: *prefetch, Diag: stderr})
	if err != nil {
		for _, o := range outputs {
			o.Close()
		}
		return cli.Usage(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	stopping := false
	for {
		select {
		case err := <-done:
			return err
		case sig := <-signals:
			switch sig {
			case syscall.SIGHUP:
				if err := s.Reopen(); err != nil {
					fmt.Fprintf(stderr, "logsink: reopen: %v\n", err)
				}
			case syscall.SIGUSR1:
				fmt.Fprintf(stderr, "logsink: %v\n", s.Stats())
			default:
				if stopping {
					return errAborted
				}
				stopping = true
				fmt.Fprintf(stderr, "logsink: stopping after writing what was received (%v again exits at once)\n", sig)
				stop()
			}
		}
	}
}
