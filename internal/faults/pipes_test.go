package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/logfan/logfan/internal/brokertest"
	"github.com/logfan/logfan/slogamqp"
)

// 9. emitlog pipes a million lines while its connection is cut ten times:
// it exits 0, and every line is in the check queue, once after dedupe.
func TestFault9EmitlogMillionLinesCutTenTimes(t *testing.T) {
	url := enabled(t)
	const n, cuts = 1000000, 10
	ex, queue := brokertest.CheckQueue(t, nil)
	p := brokertest.NewProxy(t, brokertest.Host(t, url))
	bin := filepath.Join(t.TempDir(), "emitlog")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/emitlog").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-url", brokertest.WithHost(t, url, p.Addr()), "-exchange", ex, "-timeout", "60s")
	var stderr brokertest.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w := bufio.NewWriter(stdin)
		for i := range n {
			fmt.Fprintf(w, "line %d\n", i)
		}
		w.Flush()
		stdin.Close()
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// A cut every tenth of the way, while emitlog runs.
	ch := brokertest.Channel(t)
	for k := 1; k <= cuts; k++ {
		waitFor(t, "progress", func() bool { return brokertest.Depth(t, ch, queue) >= k*n/(cuts+1) })
		p.Cut()
	}
	if err := <-exited; err != nil {
		t.Fatalf("emitlog: %v\n%s", err, stderr.String())
	}
	took := time.Since(start)
	seen, copies := drainLines(t, queue)
	if len(seen) != n {
		t.Errorf("%d distinct lines in the check queue, want %d", len(seen), n)
	}
	figMu.Lock()
	allFigs = append(allFigs, figures{fault: "9. emitlog 1M lines, cut x10", records: n, dupes: uint64(copies - len(seen)), handlerRecon: uint64(p.Accepts() - 1), recovery: took})
	figMu.Unlock()
	t.Logf("%d lines in %v, %d copies in the queue, %d connections", n, took, copies, p.Accepts())
}

// drainLines reads every message of queue and returns the distinct
// messages and how many copies there were.
func drainLines(t *testing.T, queue string) (map[string]bool, int) {
	t.Helper()
	ch := brokertest.Channel(t)
	if err := ch.Qos(5000, 0, false); err != nil {
		t.Fatal(err)
	}
	total := brokertest.Depth(t, ch, queue)
	d, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 1; i <= total; i++ {
		var m struct{ Msg string }
		msg := <-d
		if err := json.Unmarshal(msg.Body, &m); err != nil {
			t.Fatal(err)
		}
		seen[m.Msg] = true
		if i%1000 == 0 || i == total {
			msg.Ack(true)
		}
	}
	return seen, total
}

// 10. A full queue with x-overflow reject-publish beside a normal one:
// the broker nacks every record. The handler sends each again 3 times,
// no more, keeps its connection, and counts them undelivered.
func TestFault10RejectPublishBesideNormalQueue(t *testing.T) {
	url := enabled(t)
	ex, normal := brokertest.CheckQueue(t, nil)
	brokertest.BindQueue(t, ex, brokertest.Name("faults-full-q"), amqp.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	h, err := slogamqp.New(&slogamqp.Options{URL: url, Exchange: ex, MinBackoff: 50 * time.Millisecond, OnError: func(error, time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	start := time.Now()
	for i := range n {
		slog.New(h).Info("refused", "i", i)
	}
	waitFor(t, "every record given up", func() bool { return h.Stats().Undelivered == n })
	took := time.Since(start)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.Close(ctx); !errors.Is(err, slogamqp.ErrUndelivered) {
		t.Fatalf("Close: %v", err)
	}
	st := h.Stats()
	copies := brokertest.Depth(t, brokertest.Channel(t), normal)
	if st.Reconnects != 0 || copies != 4*n || st.Undelivered != n {
		t.Errorf("%d copies in the normal queue, stats %+v", copies, st)
	}
	figMu.Lock()
	allFigs = append(allFigs, figures{fault: "10. reject-publish beside normal", records: n, dropped: st.Undelivered, dupes: uint64(copies - n), resent: st.Resent, handlerRecon: st.Reconnects, recovery: took})
	figMu.Unlock()
}

// 11. Close while the broker accepts TCP and never answers the handshake:
// Close returns by its deadline.
func TestFault11CloseInStalledHandshake(t *testing.T) {
	enabled(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go io.Copy(io.Discard, c)
		}
	}()
	h, err := slogamqp.New(&slogamqp.Options{URL: "amqp://guest:guest@" + ln.Addr().String() + "/", OnError: func(error, time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 250 {
		slog.New(h).Info("stuck", "i", i)
	}
	c := <-accepted
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = h.Close(ctx)
	took := time.Since(start)
	if !errors.Is(err, slogamqp.ErrUndelivered) || !strings.Contains(err.Error(), "250 of 250") || took > 2*time.Second {
		t.Errorf("Close after %v: %v", took, err)
	}
	figMu.Lock()
	allFigs = append(allFigs, figures{fault: "11. Close in a stalled handshake", records: 250, dropped: 250, recovery: took})
	figMu.Unlock()
}
