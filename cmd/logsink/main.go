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
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logfan/logfan/internal/cli"
	"github.com/logfan/logfan/sink"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	err := Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, signals)
	os.Exit(exitCode(err, os.Stderr))
}

// errVersion is -version: print it and exit 0.
var errVersion = errors.New("version asked")

// errAborted is a second stop signal: exit at once.
var errAborted = errors.New("aborted by a second signal")

func exitCode(err error, stderr io.Writer) int { return cli.ExitCode("logsink", err, stderr) }

const usage = `Usage: logsink [flags]

Binds a fresh exclusive queue to the exchange (or, with -queue, a durable
quorum queue that keeps records while no sink runs) and writes every record
to the screen (text on standard error by default) or, with -file, to a file
of one JSON object per line, rotated by size. SIGHUP reopens the file,
SIGUSR1 prints statistics, SIGINT or SIGTERM stop after acknowledging what
was written.

Flags:
`

// Run is the whole command, testable in-process. signals carries what
// main subscribed to; ctx ending stops it as SIGTERM does.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, signals <-chan os.Signal) error {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stdout, cli.Version("logsink"))
		return nil
	}
	if err != nil {
		return err
	}
	outputs, err := cfg.outputs(stdout, stderr)
	if err != nil {
		return cli.Usage(err)
	}
	// One format for every diagnostic, the sink's and ours: slog's text.
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := sink.New(cfg.sinkOptions(outputs, log))
	if err != nil {
		for _, o := range outputs {
			o.Close()
		}
		return cli.Usage(err)
	}
	if cfg.metrics != "" {
		stopMetrics, err := serveMetrics(ctx, cfg.metrics, s, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	return serve(ctx, s, signals, log, cfg.file)
}

// config is what the flags asked for.
type config struct {
	url, exchange, kind, file    string
	format                       string
	bind                         cli.Strings
	metrics, color               string
	maxSize, maxBackups, maxAge  int
	compress, toStderr, toStdout bool
	fileMode                     os.FileMode
	rotateEvery                  time.Duration
	level                        slog.Leveler
	prefetch                     int
	queue                        string
	queueMaxBytes                int64
	singleActive, durable        bool
	stream, from                 string
	retention                    time.Duration
	streamMaxBytes               int64
}

func (c config) sinkOptions(outputs []sink.Output, log *slog.Logger) *sink.Options {
	o := &sink.Options{URL: c.url, Exchange: c.exchange, ExchangeKind: c.kind, BindingKeys: c.bind, Durable: c.durable, Outputs: outputs, Level: c.level, Prefetch: c.prefetch, Logger: log,
		Queue: c.queue, QueueMaxBytes: c.queueMaxBytes, SingleActive: c.singleActive,
		Stream: c.stream, StreamFrom: c.from, StreamMaxAge: c.retention, StreamMaxBytes: c.streamMaxBytes}
	if (c.queue != "" || c.stream != "") && c.file != "" {
		o.StatePath = c.file + ".state" // beside the file it describes
	}
	return o
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("logsink", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	brokerURL := cli.URLFlags(fs)
	fs.StringVar(&c.exchange, "exchange", "logs", "`exchange` to bind to, declared as the producers do (-exchange-type, -durable-exchange)")
	fs.StringVar(&c.kind, "exchange-type", "fanout", "`kind` of the exchange: fanout, direct or topic")
	fs.Var(&c.bind, "bind", "bind with this `key`; repeatable (default: \"\" for fanout, # for topic, each level for direct)")
	fs.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics and health at /healthz (e.g. :9105)")
	version := fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&c.file, "file", "", "write NDJSON records to this `path` (then no screen output unless -stderr or -stdout)")
	fs.IntVar(&c.maxSize, "max-size", 100, "rotate the file past this many `megabytes` (0: never by size, as when logrotate does it)")
	fs.DurationVar(&c.rotateEvery, "rotate-every", 0, "rotate the file by time too: 24h daily at midnight, 1h on the hour, or any `duration` (0: never)")
	fs.IntVar(&c.maxBackups, "max-backups", 0, "keep at most this many rotated `files` (0: all)")
	fs.IntVar(&c.maxAge, "max-age", 0, "delete rotated files older than this many `days` (0: never)")
	fs.BoolVar(&c.compress, "compress", false, "gzip rotated files")
	fileMode := fs.String("file-mode", "0640", "permission `bits` of new files, in octal")
	fs.BoolVar(&c.toStderr, "stderr", false, "show records on standard error (the default without -file)")
	fs.BoolVar(&c.toStdout, "stdout", false, "show records on standard output")
	fs.StringVar(&c.format, "format", sink.FormatText, "screen `format`: text or json")
	fs.StringVar(&c.color, "color", "auto", "colour the text screen: `auto` (on a terminal, unless NO_COLOR is set and not empty), always or never")
	level := fs.String("level", "", "drop records below this `level`: debug, info, warn, error (default: keep all)")
	fs.IntVar(&c.prefetch, "prefetch", 1000, "unacknowledged `records` the broker may send ahead")
	fs.StringVar(&c.queue, "queue", "", "consume the durable quorum queue `NAME`, shared by every sink that names it, instead of an exclusive one")
	fs.Int64Var(&c.queueMaxBytes, "queue-max-bytes", 1<<30, "with -queue: past this many `bytes` the broker drops the oldest records")
	fs.BoolVar(&c.singleActive, "single-active", false, "with -queue: one sink active at a time, the others on standby")
	fs.BoolVar(&c.durable, "durable-exchange", false, "declare the exchange durable, as producers with Durable: true do")
	fs.StringVar(&c.stream, "stream", "", "read the RabbitMQ stream `NAME`, which keeps history for any number of readers")
	fs.StringVar(&c.from, "from", "next", "with -stream: start at `first`, last, next, an RFC 3339 time, a duration back (1h) or an offset; a -file sink resumes where it stopped")
	retention := fs.String("retention", "7d", "with -stream: keep records this `long` (a duration; d for days)")
	fs.Int64Var(&c.streamMaxBytes, "stream-max-bytes", 10<<30, "with -stream: keep at most this many `bytes`")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return c, err
		}
		return c, cli.Usage(err)
	}
	if *version {
		return c, errVersion
	}
	url, err := brokerURL()
	if err != nil {
		return c, err
	}
	c.url = url
	if fs.NArg() > 0 {
		return c, cli.Usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if c.metrics != "" {
		if _, _, err := net.SplitHostPort(c.metrics); err != nil {
			return c, cli.Usage(fmt.Errorf("invalid -metrics %q: want host:port or :port", c.metrics))
		}
	}
	if c.format != sink.FormatText && c.format != sink.FormatJSON {
		return c, cli.Usage(fmt.Errorf("invalid -format %q: want text or json", c.format))
	}
	if c.color != "auto" && c.color != "always" && c.color != "never" {
		return c, cli.Usage(fmt.Errorf("invalid -color %q: want auto, always or never", c.color))
	}
	if c.singleActive && c.queue == "" {
		return c, cli.Usage(errors.New("-single-active needs -queue"))
	}
	if c.queue != "" && c.stream != "" {
		return c, cli.Usage(errors.New("-queue and -stream exclude each other"))
	}
	retain, err := parseRetention(*retention)
	if err != nil {
		return c, cli.Usage(err)
	}
	c.retention = retain
	if c.prefetch <= 0 || c.queueMaxBytes <= 0 || c.streamMaxBytes <= 0 {
		return c, cli.Usage(errors.New("-prefetch, -queue-max-bytes and -stream-max-bytes must be positive"))
	}
	if c.maxSize < 0 || c.maxBackups < 0 || c.maxAge < 0 {
		return c, cli.Usage(errors.New("-max-size, -max-backups and -max-age must not be negative"))
	}
	if c.rotateEvery != 0 && c.rotateEvery < time.Second {
		return c, cli.Usage(fmt.Errorf("invalid -rotate-every %v: want a second or more, or 0", c.rotateEvery))
	}
	mode, err := strconv.ParseUint(*fileMode, 8, 32)
	if err != nil || mode > 0o777 || mode == 0 {
		return c, cli.Usage(fmt.Errorf("invalid -file-mode %q: want octal permission bits such as 0640", *fileMode))
	}
	c.fileMode = os.FileMode(mode)
	if *level != "" {
		lv, err := cli.ParseLevel(*level)
		if err != nil {
			return c, err
		}
		c.level = lv
	}
	return c, nil
}

// parseRetention parses a duration that may count days ("7d").
func parseRetention(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= time.Second {
		return d, nil
	}
	return 0, fmt.Errorf("invalid -retention %q: want a duration of a second or more, such as 7d or 12h", s)
}

// outputs opens what c asks for: the screens, then the file.
func (c config) outputs(stdout, stderr io.Writer) ([]sink.Output, error) {
	var outputs []sink.Output
	screen := func(w io.Writer) {
		f, _ := w.(*os.File)
		color := c.color == "always" || (c.color == "auto" && f != nil && sink.UseColor(f))
		outputs = append(outputs, sink.NewScreen(w, c.format, color))
	}
	if c.toStderr || (c.file == "" && !c.toStdout) {
		screen(stderr)
	}
	if c.toStdout {
		screen(stdout)
	}
	if c.file != "" {
		maxSize := c.maxSize
		if maxSize == 0 {
			maxSize = -1 // never by size
		}
		out, err := sink.NewFile(sink.FileOptions{Path: c.file, MaxSizeMB: maxSize, RotateEvery: c.rotateEvery,
			MaxBackups: c.maxBackups, MaxAgeDays: c.maxAge, Compress: c.compress, Mode: c.fileMode})
		if err != nil {
			return nil, fmt.Errorf("cannot write -file: %w", err)
		}
		outputs = append(outputs, out)
	}
	return outputs, nil
}

// serve runs s until it stops, answering the signals: SIGHUP reopens the
// file, SIGUSR1 logs the counters, a stop signal stops s and a second one
// aborts.
func serve(ctx context.Context, s *sink.Sink, signals <-chan os.Signal, log *slog.Logger, file string) error {
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
				reopen(s, log, file)
			case syscall.SIGUSR1:
				log.LogAttrs(ctx, slog.LevelInfo, "statistics", s.Stats().Attrs()...)
			default:
				if stopping {
					return errAborted
				}
				stopping = true
				log.Info("stopping after writing what was received; a second signal exits at once", "signal", sig.String())
				stop()
			}
		}
	}
}

// reopen answers SIGHUP, saying what it reopened.
func reopen(s *sink.Sink, log *slog.Logger, file string) {
	switch err := s.Reopen(); {
	case err != nil:
		log.Error("reopen failed", "file", file, "err", err)
	case file == "":
		log.Info("SIGHUP: no -file to reopen")
	default:
		log.Info("reopened", "file", file)
	}
}
