package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/brokertest"
)

func get(t *testing.T, ch *amqp.Channel, queue string) map[string]any {
	t.Helper()
	d, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("get from %s: %v, %v", queue, ok, err)
	}
	var m map[string]any
	if err := json.Unmarshal(d.Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPipeDeliversEveryLine is `seq 1 30000 | emitlog`: twice the
// handler's buffer, every line confirmed.
func TestPipeDeliversEveryLine(t *testing.T) {
	url := brokertest.URL(t)
	ex, queue := brokertest.CheckQueue(t, nil)
	var in strings.Builder
	const n = 30000
	for i := 1; i <= n; i++ {
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	var stderr bytes.Buffer
	if err := Run(context.Background(), []string{"-url", url, "-exchange", ex}, strings.NewReader(in.String()), io.Discard, &stderr); err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	if got := brokertest.Depth(t, brokertest.Channel(t), queue); got != n {
		t.Errorf("queue holds %d of %d lines", got, n)
	}
}

// TestLongLines: a line over the limit is sent cut and marked, the lines
// after it are sent, and emitlog says so and exits 1; a line of exactly
// the limit is sent whole.
func TestLongLines(t *testing.T) {
	url := brokertest.URL(t)
	ex, queue := brokertest.CheckQueue(t, nil)
	over := strings.Repeat("x", maxLine+1000)
	exact := strings.Repeat("y", maxLine)
	in := over + "\nafter\n" + exact + "\r\n"
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"-url", url, "-exchange", ex, "-timeout", "60s"}, strings.NewReader(in), io.Discard, &stderr)
	var out bytes.Buffer
	if code := exitCode(err, &out); code != 1 || !strings.Contains(out.String(), "1 lines longer than 16777216 bytes were sent cut") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("exit %d: %q", code, out.String())
	}
	ch := brokertest.Channel(t)
	first := get(t, ch, queue)
	if first["msg"] != over[:maxLine] || first["malformed"] != "line of 16778216 bytes cut to 16777216" {
		t.Errorf("first record: %d bytes of msg, malformed %v", len(first["msg"].(string)), first["malformed"])
	}
	if m := get(t, ch, queue); m["msg"] != "after" {
		t.Errorf("second record %v", m)
	}
	if m := get(t, ch, queue); m["msg"] != exact || m["malformed"] != nil {
		t.Errorf("third record: %d bytes, malformed %v", len(m["msg"].(string)), m["malformed"])
	}
}

// TestStopsReadingWhenTheBrokerTakesNothing: with the broker unreachable,
// emitlog waits -timeout for room, then stops reading and says how many
// records of how many it could not deliver.
func TestStopsReadingWhenTheBrokerTakesNothing(t *testing.T) {
	url := brokertest.URL(t)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	p.Refuse(true)
	in := strings.Repeat("line\n", 100000) // more than the buffer holds
	start := time.Now()
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"-url", brokertest.WithHost(t, url, p.Addr()), "-timeout", "300ms"}, strings.NewReader(in), io.Discard, &stderr)
	var out bytes.Buffer
	if code := exitCode(err, &out); code != 1 || !strings.Contains(out.String(), "16385 of 16385 records not delivered (1 dropped, 16384 unconfirmed)") || !strings.Contains(out.String(), "stopped reading stdin") {
		t.Errorf("exit %d: %q", code, out.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v with -timeout 300ms", d)
	}
}

// TestTimeoutHoldsInAStalledHandshake: a broker that accepts TCP and
// never answers cannot hold emitlog past -timeout.
func TestTimeoutHoldsInAStalledHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			go io.Copy(io.Discard, c)
		}
	}()
	start := time.Now()
	err = Run(context.Background(), []string{"-url", "amqp://guest:guest@" + ln.Addr().String() + "/", "-timeout", "500ms", "hello"}, nil, io.Discard, io.Discard)
	if d := time.Since(start); d > 3*time.Second || err == nil {
		t.Errorf("returned %v after %v with -timeout 500ms", err, d)
	}
}

// TestBatchPipe is `seq 1 30000 | emitlog -batch`: every line arrives
// once, packed into far fewer messages.
func TestBatchPipe(t *testing.T) {
	url := brokertest.URL(t)
	ex := brokertest.Name("test-emitlog-batch")
	q := brokertest.Bind(t, ex, "fanout", "", true)
	var in strings.Builder
	const n = 30000
	for i := 1; i <= n; i++ {
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	var stderr bytes.Buffer
	if err := Run(context.Background(), []string{"-url", url, "-exchange", ex, "-batch"}, strings.NewReader(in.String()), io.Discard, &stderr); err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	messages := 0
	for len(seen) < n {
		d := q.Next(t, 10*time.Second)
		messages++
		for _, line := range strings.Split(string(d.Body), "\n") {
			var m struct{ Msg string }
			if err := json.Unmarshal([]byte(line), &m); err != nil || seen[m.Msg] {
				t.Fatalf("line %q: %v, or seen twice", line, err)
			}
			seen[m.Msg] = true
		}
	}
	for i := 1; i <= n; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("line %d missing", i)
		}
	}
	if messages >= n/10 {
		t.Errorf("%d lines in %d messages: want batches", n, messages)
	}
}
