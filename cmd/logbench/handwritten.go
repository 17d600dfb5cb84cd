package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/slogamqp"
)

// The hand-written equivalent (e): what a user would write instead of
// slogamqp and logsink, doing the same job. Its publisher sets the same
// properties and headers as the handler, with a window of unconfirmed
// messages as large as the handler's; its consumer, in a child process as
// the sink is, takes the same prefetch, writes each body to a buffered
// file and acknowledges with multiple in groups, as the sink does.
const (
	handWindow   = 1024 // the handler's default MaxInFlight
	handPrefetch = 1000 // the sink's default Prefetch
	handAckEvery = handPrefetch / 2
)

// handWritten runs (e), or with confirms false (e').
func handWritten(ctx context.Context, url, dir string, d time.Duration, size int, confirms bool) (result, error) {
	ex := fmt.Sprintf("logbench-%d", time.Now().UnixNano())
	child, err := startSinkChild(ctx, url, ex, filepath.Join(dir, ex+".log"), "bare")
	if err != nil {
		return result{}, err
	}
	defer child.stop()
	conn, ch, err := dialChannel(url)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	var acks chan amqp.Confirmation
	if confirms {
		if err := ch.Confirm(false); err != nil {
			return result{}, err
		}
		acks = ch.NotifyPublish(make(chan amqp.Confirmation, handWindow))
	}
	body := []byte(`{"time":"2026-11-29T09:00:00.000Z","level":"INFO","msg":"request served","path":"/api/v1/orders","status":200,"pad":"` + payload(size) + `"}`)
	resetPeakRSS()
	start := time.Now()
	var sent, inFlight, wrote, maxBehind uint64
	headers := amqp.Table{}
	for time.Since(start) < d && ctx.Err() == nil {
		for range 100 {
			for confirms && inFlight >= handWindow {
				if c := <-acks; !c.Ack {
					return result{}, fmt.Errorf("nack for %d", c.DeliveryTag)
				}
				inFlight--
			}
			seq := sent + 1
			headers[slogamqp.HeaderLevel] = "INFO"
			headers[slogamqp.HeaderProducer] = "0123456789abcdef"
			headers[slogamqp.HeaderSeq] = int64(seq)
			headers[slogamqp.HeaderWindow] = int64(16384 + handWindow)
			err := ch.Publish(ex, "", false, false, amqp.Publishing{Headers: headers, ContentType: slogamqp.ContentTypeJSON,
				DeliveryMode: amqp.Transient, MessageId: "0123456789abcdef-" + strconv.FormatUint(seq, 10),
				Timestamp: time.Now(), AppId: "logbench", Body: body})
			if err != nil {
				return result{}, err
			}
			sent++
			inFlight++
		}
		select {
		case wrote = <-child.written:
			taken := sent // by the broker, and not yet in the file
			if confirms {
				taken -= inFlight
			}
			if taken > wrote {
				maxBehind = max(maxBehind, taken-wrote)
			}
		default:
		}
	}
	for confirms && inFlight > 0 {
		<-acks
		inFlight--
	}
	wrote, last, err := child.await(wrote, sent, 0)
	if err != nil {
		return result{}, err
	}
	name := "(e) hand-written, confirms"
	if !confirms {
		name = "(e') hand-written, no confirms"
	}
	return result{name: name, records: wrote, elapsed: last.Sub(start), lost: int64(sent) - int64(wrote),
		sinkCPU: cpuSeconds(child.cmd.Process.Pid) / last.Sub(start).Seconds(), sinkRSS: peakRSS(child.cmd.Process.Pid), pubRSS: peakRSS(os.Getpid()), maxBehind: maxBehind}, nil
}

// bareConsumer is (e)'s consumer: it prints how many records it has
// written every 20ms, starting with 0 once consuming.
func bareConsumer(ctx context.Context, url, exchange, path string) error {
	conn, ch, err := dialChannel(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := ch.ExchangeDeclare(exchange, "fanout", false, true, false, false, nil); err != nil {
		return err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	if err := ch.QueueBind(q.Name, "", exchange, false, nil); err != nil {
		return err
	}
	if err := ch.Qos(handPrefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 64<<10)
	fmt.Println(0)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var written, pending, lastTag uint64
	commit := func() error {
		if pending == 0 {
			return nil
		}
		if err := w.Flush(); err != nil {
			return err
		}
		written += pending
		pending = 0
		return ch.Ack(lastTag, true)
	}
	for {
		select {
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("consumer cancelled")
			}
			w.Write(d.Body)
			w.WriteByte('\n')
			lastTag = d.DeliveryTag
			if pending++; pending >= handAckEvery {
				if err := commit(); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := commit(); err != nil {
				return err
			}
			fmt.Println(written)
		case <-ctx.Done():
			return commit()
		}
	}
}

// emitlogBatch is (p): lines piped into `emitlog -batch`, end to end into
// a file sink, every line delivered.
func emitlogBatch(ctx context.Context, url, dir, emitlog string, lines int) (result, error) {
	ex := fmt.Sprintf("logbench-%d", time.Now().UnixNano())
	child, err := startSinkChild(ctx, url, ex, filepath.Join(dir, ex+".log"), "")
	if err != nil {
		return result{}, err
	}
	defer child.stop()
	cmd := exec.CommandContext(ctx, emitlog, "-url", url, "-exchange", ex, "-batch", "-timeout", "60s")
	in, err := cmd.StdinPipe()
	if err != nil {
		return result{}, err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	// Its peak RSS, read while it runs: wait4's maxrss would count the
	// memory of this process, which it was forked from.
	var pubRSS int64 = -1
	sampled := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss := peakRSS(cmd.Process.Pid); rss > pubRSS {
				pubRSS = rss
			}
			select {
			case <-exited:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	w := bufio.NewWriterSize(in, 64<<10)
	for range lines {
		w.WriteString("y\n") // what yes writes
	}
	w.Flush()
	in.Close()
	err = cmd.Wait()
	close(exited)
	<-sampled
	if err != nil {
		return result{}, fmt.Errorf("emitlog: %w", err)
	}
	wrote, last, err := child.await(0, uint64(lines), 0)
	if err != nil {
		return result{}, err
	}
	return result{name: "(p) emitlog -batch, from a pipe", records: wrote, elapsed: last.Sub(start), lost: int64(lines) - int64(wrote),
		pubCPU:  (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / last.Sub(start).Seconds(),
		sinkCPU: cpuSeconds(child.cmd.Process.Pid) / last.Sub(start).Seconds(), sinkRSS: peakRSS(child.cmd.Process.Pid), pubRSS: pubRSS}, nil
}
