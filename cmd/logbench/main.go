// Command logbench measures records per second end to end against the
// broker at -url, in one run, so that the figures are ratios on the same
// machine:
//
//	(a) a bare amqp091-go publish loop, no confirms, into a fanout with one
//	    consuming queue: the baseline;
//	(a') the same loop with the properties and headers slogamqp sets on
//	    every message, which is what they cost the broker;
//	(b) slogamqp (confirms on) -> broker -> sink -> file;
//	(c) the same with confirms off;
//	(d) the same as (b) in batch mode.
//
// The sink runs in a child process, so that its CPU share and peak RSS are
// its own.
//
//	go run ./cmd/logbench -duration 5s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/amqpconn"
	"github.com/logfan/logfan/internal/cli"
	"github.com/logfan/logfan/sink"
	"github.com/logfan/logfan/slogamqp"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-sink-child" {
		os.Exit(cli.ExitCode("logbench", sinkChild(os.Args[2:]), os.Stderr))
	}
	// Ctrl-C ends the run through Run's cleanup, which stops the sink child.
	ctx, stop := signalContext()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode("logbench", err, os.Stderr))
}

type result struct {
	name      string
	records   uint64
	elapsed   time.Duration
	dropped   uint64
	lost      int64   // handled - dropped - written: must be 0
	pubCPU    float64 // the producer's share of one core: this process, or emitlog
	sinkCPU   float64
	sinkRSS   int64 // kB
	pubRSS    int64 // kB
	maxBehind uint64
	brokerCPU float64 // share of one core, -1 when the broker is not visible
	diskPeak  int64   // the broker's data folder's largest growth, -1 when not visible
}

func (r result) rate() float64 { return float64(r.records) / r.elapsed.Seconds() }

// Run runs every scenario and prints a table.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("logbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	url := fs.String("url", "", "broker `URL` (default $AMQP_URL, else "+amqpconn.Redact(amqpconn.DefaultURL)+")")
	duration := fs.Duration("duration", 5*time.Second, "how long each scenario publishes")
	size := fs.Int("size", 200, "approximate `bytes` per record")
	emitlog := fs.String("emitlog", "", "also measure `yes | head -n LINES | emitlog -batch`, running the emitlog binary at this `path`")
	lines := fs.Int("lines", 5000000, "lines for the emitlog scenario")
	cpuprofile := fs.String("cpuprofile", "", "write CPU profiles: `prefix`.producer for this process, prefix.sink.EXCHANGE for each sink child")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "Usage: logbench [-url URL] [-duration 5s] [-size 200]")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return cli.Usage(err)
	}
	if *version {
		fmt.Fprintln(stdout, cli.Version("logbench"))
		return nil
	}
	if *duration <= 0 || *size < 100 {
		return cli.Usage(errors.New("-duration must be positive and -size at least 100"))
	}
	u, err := amqpconn.URLFromEnv(*url)
	if err != nil {
		return cli.Usage(err)
	}
	if urls := amqpconn.SplitURLs(u); len(urls) > 1 {
		return cli.Usage(errors.New("-url: logbench measures one broker; give one URL, not a list"))
	}
	if err := amqpconn.ValidateURLs([]string{u}); err != nil {
		return cli.Usage(err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile + ".producer")
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
		os.Setenv("LOGBENCH_SINK_CPUPROFILE", *cpuprofile+".sink")
	}
	dir, err := os.MkdirTemp("", "logbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(stdout, "logbench: %d-byte records, %v per scenario, broker %s, %d CPUs\n", *size, *duration, amqpconn.Redact(u), numCPU())
	var results []result
	broker := brokerPID(u)
	data := dataDir(broker)
	// run runs a scenario and adds the broker's CPU share during it. The
	// producer's profile labels each scenario's samples with its letter:
	// go tool pprof -tagfocus 'scenario=(d)' PREFIX.producer
	run := func(letter string, scenario func() (result, error)) (r result, err error) {
		before, self := cpuSeconds(broker), cpuSeconds(os.Getpid())
		stopDisk := make(chan struct{})
		var disk <-chan int64
		if data != "" {
			disk = diskPeak(data, stopDisk)
		}
		pprof.Do(ctx, pprof.Labels("scenario", letter), func(context.Context) { r, err = scenario() })
		close(stopDisk)
		r.diskPeak = -1
		if disk != nil {
			r.diskPeak = <-disk
		}
		if r.pubCPU == 0 && r.elapsed > 0 {
			r.pubCPU = (cpuSeconds(os.Getpid()) - self) / r.elapsed.Seconds()
		}
		r.brokerCPU = -1
		if broker != 0 && r.elapsed > 0 {
			r.brokerCPU = (cpuSeconds(broker) - before) / r.elapsed.Seconds()
		}
		return r, err
	}
	base, err := run("(a)", func() (result, error) { return bare(u, *duration, *size, false) })
	if err != nil {
		return fmt.Errorf("(a) bare loop: %w", err)
	}
	withProps, err := run("(a')", func() (result, error) { return bare(u, *duration, *size, true) })
	if err != nil {
		return fmt.Errorf("(a') bare loop with properties: %w", err)
	}
	results = append(results, base, withProps)
	for _, confirms := range []bool{true, false} {
		r, err := run(map[bool]string{true: "(e)", false: "(e')"}[confirms], func() (result, error) { return handWritten(ctx, u, dir, *duration, *size, confirms) })
		if err != nil {
			return fmt.Errorf("(e) hand-written: %w", err)
		}
		results = append(results, r)
	}
	durable := slogamqp.Options{Persistent: true}
	durableBatch := slogamqp.Options{Persistent: true, Batch: &slogamqp.BatchOptions{}}
	for _, sc := range []struct {
		name string
		opts slogamqp.Options
		mode string // the sink's: "" (live), "queue" or "stream"
	}{
		{"(b) handler, confirms on", slogamqp.Options{}, ""},
		{"(c) handler, confirms off", slogamqp.Options{DisableConfirms: true}, ""},
		{"(d) handler, batch mode", slogamqp.Options{Batch: &slogamqp.BatchOptions{}}, ""},
		{"(q) -queue sink", durable, "queue"},
		{"(q') -queue sink, batch", durableBatch, "queue"},
		{"(s) -stream sink", durable, "stream"},
		{"(s') -stream sink, batch", durableBatch, "stream"},
	} {
		r, err := run(sc.name[:strings.IndexByte(sc.name, ')')+1], func() (result, error) { return endToEnd(ctx, u, dir, sc.name, sc.opts, sc.mode, *duration, *size) })
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		results = append(results, r)
	}

	fmt.Fprintf(stdout, "\n%-32s %12s %8s %8s %6s %8s %9s %11s %11s %10s %11s %12s\n", "scenario", "records/s", "ratio", "dropped", "lost", "pub CPU", "sink CPU", "sink RSS", "pub RSS", "max behind", "broker CPU", "disk/1M rec")
	for _, r := range results {
		printResult(stdout, r, base)
	}
	if *emitlog != "" {
		r, err := run("(p)", func() (result, error) { return emitlogBatch(ctx, u, dir, *emitlog, *lines) })
		if err != nil {
			return fmt.Errorf("emitlog -batch: %w", err)
		}
		printResult(stdout, r, base)
		results = append(results, r)
	}
	printTargets(stdout, results)
	for _, r := range results {
		if r.lost != 0 {
			return fmt.Errorf("%s lost %d records", r.name, r.lost)
		}
	}
	return nil
}

func printResult(w io.Writer, r result, base result) {
	broker := "—"
	if r.brokerCPU >= 0 {
		broker = fmt.Sprintf("%.0f%%", 100*r.brokerCPU)
	}
	disk := "—"
	if r.diskPeak >= 0 && r.records > 0 {
		// bytes per record are megabytes per million records
		disk = fmt.Sprintf("%.0f MB", float64(r.diskPeak)/float64(r.records))
	}
	fmt.Fprintf(w, "%-32s %12.0f %7.2fx %8d %6d %7.0f%% %8.0f%% %8d kB %8d kB %10d %11s %12s\n",
		r.name, r.rate(), r.rate()/base.rate(), r.dropped, r.lost, 100*r.pubCPU, 100*r.sinkCPU, r.sinkRSS, r.pubRSS, r.maxBehind, broker, disk)
}

// printTargets prints the ratios the performance targets are about.
func printTargets(w io.Writer, results []result) {
	rate := map[string]float64{}
	for _, r := range results {
		rate[r.name[:strings.IndexByte(r.name, ')')+1]] = r.rate()
	}
	fmt.Fprintln(w)
	for _, t := range []struct {
		what, of, to string
		want         float64
	}{
		{"(b) / (e): handler and sink, confirms, against the hand-written equivalent", "(b)", "(e)", 0.9},
		{"(c) / (e'): the same, confirms off", "(c)", "(e')", 0.95},
		{"(d) / (a): batch mode against the bare loop", "(d)", "(a)", 20},
		{"emitlog -batch / (a)", "(p)", "(a)", 20},
	} {
		if rate[t.of] == 0 || rate[t.to] == 0 {
			continue
		}
		fmt.Fprintf(w, "%-76s %6.2fx (target >= %gx)\n", t.what, rate[t.of]/rate[t.to], t.want)
	}
	printCeilings(w, results, rate["(a)"])
	printMemory(w, results)
}

// printCeilings prints, for the batch scenarios, the CPU each record costs
// the producer, the sink and the broker, and the rate at which those
// costs would take every core of the machine: how far the target is
// from what the machine can do.
func printCeilings(w io.Writer, results []result, base float64) {
	for _, r := range results {
		if !strings.HasPrefix(r.name, "(d)") && !strings.HasPrefix(r.name, "(p)") || r.brokerCPU < 0 || r.rate() == 0 {
			continue
		}
		us := func(share float64) float64 { return 1e6 * share / r.rate() }
		perRecord := (r.pubCPU + r.sinkCPU + r.brokerCPU) / r.rate()
		ceiling := float64(numCPU()) / perRecord
		fmt.Fprintf(w, "%s CPU per record: producer %.2f µs, sink %.2f µs, broker %.2f µs: %d cores allow %.0f/s, %.1fx (a)\n",
			r.name[:strings.IndexByte(r.name, ')')+1], us(r.pubCPU), us(r.sinkCPU), us(r.brokerCPU), numCPU(), ceiling, ceiling/base)
	}
}

// bufferBytes is the handler's BufferBytes in every scenario, its default.
const bufferBytes = 16 << 20

// printMemory prints the most memory a handler scenario's producer took
// beyond the hand-written program's, against the handler's BufferBytes.
func printMemory(w io.Writer, results []result) {
	var hand, most result
	for _, r := range results {
		switch r.name[:strings.IndexByte(r.name, ')')+1] {
		case "(e)":
			hand = r
		case "(b)", "(c)", "(d)", "(q)", "(q')", "(s)", "(s')":
			if r.pubRSS > most.pubRSS {
				most = r
			}
		}
	}
	if hand.pubRSS <= 0 || most.pubRSS <= 0 {
		return
	}
	fmt.Fprintf(w, "%-76s %5.1f MiB (target <= BufferBytes, %d MiB)\n", "handler's RSS beyond (e)'s, at most ("+most.name[:strings.IndexByte(most.name, ')')+1]+")",
		float64(most.pubRSS-hand.pubRSS)/1024, bufferBytes>>20)
}

// brokerPID is the process of the broker at url, when it listens on this
// machine and can be seen; else 0.
func brokerPID(url string) int {
	u, err := neturl.Parse(url)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = 5672
	}
	return listenerPID(port)
}

func payload(size int) string { return strings.Repeat("x", max(0, size-150)) }

// bare is the baseline: amqp091-go publishing without confirms to a
// fanout exchange whose one queue a consumer drains; with props, each
// message carries what slogamqp's do.
func bare(url string, d time.Duration, size int, props bool) (result, error) {
	conn, ch, err := dialChannel(url)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	ex := fmt.Sprintf("logbench-%d", time.Now().UnixNano())
	if err := ch.ExchangeDeclare(ex, "fanout", false, true, false, false, nil); err != nil {
		return result{}, err
	}
	cconn, cch, err := dialChannel(url)
	if err != nil {
		return result{}, err
	}
	defer cconn.Close()
	q, err := cch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return result{}, err
	}
	if err := cch.QueueBind(q.Name, "", ex, false, nil); err != nil {
		return result{}, err
	}
	deliveries, err := cch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return result{}, err
	}
	body := []byte(`{"time":"2026-11-29T09:00:00.000Z","level":"INFO","msg":"request served","path":"/api/v1/orders","status":200,"pad":"` + payload(size) + `"}`)
	resetPeakRSS()
	start := time.Now()
	var sent uint64
	headers := amqp.Table{}
	for time.Since(start) < d {
		for range 100 {
			msg := amqp.Publishing{Body: body}
			if props {
				headers[slogamqp.HeaderLevel] = "INFO"
				headers[slogamqp.HeaderProducer] = "0123456789abcdef"
				headers[slogamqp.HeaderSeq] = int64(sent + 1)
				msg = amqp.Publishing{Headers: headers, ContentType: slogamqp.ContentTypeJSON, DeliveryMode: amqp.Transient,
					MessageId: "0123456789abcdef-" + strconv.FormatUint(sent+1, 10), Timestamp: time.Now(), AppId: "logbench", Body: body}
			}
			if err := ch.Publish(ex, "", false, false, msg); err != nil {
				return result{}, err
			}
			sent++
		}
	}
	var got uint64
	var last time.Time
	timeout := time.After(2*d + 30*time.Second)
	for got < sent {
		select {
		case <-deliveries:
			got++
			last = time.Now()
		case <-timeout:
			return result{}, fmt.Errorf("received %d of %d", got, sent)
		}
	}
	name := "(a) bare amqp091 loop"
	if props {
		name = "(a') bare, with properties"
	}
	return result{name: name, records: got, elapsed: last.Sub(start), pubRSS: peakRSS(os.Getpid())}, nil
}

// endToEnd logs records through a handler to a sink in a child process
// that writes them to a file, and waits until every record is written or
// counted dropped.
func endToEnd(ctx context.Context, url, dir, name string, opts slogamqp.Options, mode string, d time.Duration, size int) (result, error) {
	ex := fmt.Sprintf("logbench-%d", time.Now().UnixNano())
	child, err := startSinkChild(ctx, url, ex, filepath.Join(dir, ex+".log"), mode)
	if err != nil {
		return result{}, err
	}
	defer child.stop()
	if mode != "" {
		defer deleteQueue(url, ex+"-"+mode)
	}

	opts.URL, opts.Exchange, opts.AppID, opts.BufferBytes = url, ex, "logbench", bufferBytes
	opts.OnError = func(err error, _ time.Duration) { fmt.Fprintf(os.Stderr, "logbench: %v\n", err) }
	h, err := slogamqp.New(&opts)
	if err != nil {
		return result{}, err
	}
	resetPeakRSS()
	start := time.Now()
	wrote, maxBehind := produce(ctx, h, d, size, child.written)
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.Close(closeCtx); err != nil {
		return result{}, err
	}
	st := h.Stats()
	want := st.Handled - st.Dropped - st.Undelivered
	if opts.Batch == nil {
		want += st.DropReports
	}
	wrote, last, err := child.await(wrote, want, st.DropReports)
	if err != nil {
		return result{}, err
	}
	return result{
		name: name, records: wrote, elapsed: last.Sub(start), dropped: st.Dropped,
		lost:    int64(st.Handled) - int64(st.Dropped) - int64(wrote-st.DropReports),
		sinkCPU: cpuSeconds(child.cmd.Process.Pid) / last.Sub(start).Seconds(), sinkRSS: peakRSS(child.cmd.Process.Pid), pubRSS: peakRSS(os.Getpid()),
		maxBehind: maxBehind,
	}, nil
}

// produce logs records through h for d, holding back while the buffer is
// half full (the figure is what reaches the file, not what is dropped).
// It returns the sink's last count and how far it fell behind.
func produce(ctx context.Context, h *slogamqp.Handler, d time.Duration, size int, written <-chan uint64) (wrote, maxBehind uint64) {
	l := slog.New(h)
	pad := payload(size)
	const limit = 16384 / 2
	for start := time.Now(); time.Since(start) < d && ctx.Err() == nil; {
		for h.Stats().Buffered > limit {
			time.Sleep(50 * time.Microsecond)
		}
		for range 100 {
			l.LogAttrs(ctx, slog.LevelInfo, "request served", slog.String("path", "/api/v1/orders"), slog.Int("status", 200), slog.String("pad", pad))
		}
		select {
		case wrote = <-written:
			if c := h.Stats().Confirmed; c > wrote && c-wrote > maxBehind {
				maxBehind = c - wrote
			}
		default:
		}
	}
	return wrote, maxBehind
}

// child is a sink child process and the counts of written records it
// prints.
type child struct {
	cmd     *exec.Cmd
	written chan uint64
	exited  chan struct{}
}

// startSinkChild starts this program as a sink child writing to path, and
// returns once it is connected.
func startSinkChild(ctx context.Context, url, exchange, path, mode string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{cmd: exec.CommandContext(ctx, self, "-sink-child", url, exchange, path, mode), written: make(chan uint64, 1000), exited: make(chan struct{})}
	c.cmd.Env = os.Environ()
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = os.Stderr
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(c.exited)
		defer c.cmd.Wait()
		defer close(c.written)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, err := strconv.ParseUint(sc.Text(), 10, 64); err == nil {
				c.written <- n
			}
		}
	}()
	if _, ok := <-c.written; !ok { // the child prints 0 once connected
		c.stop()
		return nil, errors.New("sink child ended")
	}
	return c, nil
}

// await waits until the child has written want records (or want plus
// the drop reports, which batch mode does not count), and returns its
// count and when it last grew.
func (c *child) await(wrote, want, reports uint64) (uint64, time.Time, error) {
	var last time.Time
	timeout := time.After(60 * time.Second)
	for wrote < want+reports && wrote != want {
		select {
		case n, ok := <-c.written:
			if !ok {
				return 0, last, errors.New("sink child ended")
			}
			if n != wrote {
				last = time.Now()
			}
			wrote = n
		case <-timeout:
			return 0, last, fmt.Errorf("sink wrote %d of %d records", wrote, want)
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	return wrote, last, nil
}

// stop lets the child stop cleanly (it may be writing a profile), and
// kills it after 10s.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// dialChannel opens a connection and a channel on it; the caller closes
// the connection.
func dialChannel(url string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, nil, amqpconn.RedactError(err, url)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

// deleteQueue deletes a durable sink's queue or stream after its scenario.
func deleteQueue(url, name string) {
	conn, ch, err := dialChannel(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch.QueueDelete(name, false, false, false)
}

// sinkChild runs a sink writing to a file and prints how many records it
// has written, every 20ms, starting with 0 once connected.
func sinkChild(args []string) error {
	if len(args) != 4 {
		return cli.Usage(errors.New("-sink-child URL EXCHANGE FILE MODE"))
	}
	if path := os.Getenv("LOGBENCH_SINK_CPUPROFILE"); path != "" {
		f, err := os.Create(path + "." + args[1])
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signalContext()
	defer stop()
	if args[3] == "bare" {
		return bareConsumer(ctx, args[0], args[1], args[2])
	}
	file, err := sink.NewFile(sink.FileOptions{Path: args[2], MaxSizeMB: 1 << 20})
	if err != nil {
		return err
	}
	connected := make(chan struct{}, 1)
	o := &sink.Options{URL: args[0], Exchange: args[1], Outputs: []sink.Output{file}, Diag: connWatch(connected)}
	switch mode := args[3]; mode {
	case "queue":
		o.Queue, o.StatePath = args[1]+"-queue", args[2]+".state"
	case "stream":
		o.Stream, o.StreamFrom, o.StatePath = args[1]+"-stream", "first", args[2]+".state"
	}
	s, err := sink.New(o)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-connected
	fmt.Println(0)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			fmt.Println(s.Stats().Written)
		}
	}
}

type connWatch chan struct{}

func (c connWatch) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "connected") {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}
