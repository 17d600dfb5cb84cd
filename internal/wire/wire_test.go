package wire

import (
	"bytes"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// FuzzRoundTrip encodes records as a producer does, one per message or in
// a batch, and decodes them as a consumer does: the same records, numbered
// as the producer numbered them, with the same meta.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(`{"msg":"a"}`), []byte(`{"msg":"b"}`), uint64(1), true)
	f.Add([]byte(`{}`), []byte(``), uint64(1<<40), false)
	f.Fuzz(func(t *testing.T, a, b []byte, seq uint64, batch bool) {
		if seq == 0 || bytes.ContainsRune(a, '\n') || bytes.ContainsRune(b, '\n') {
			t.Skip("records hold no newline; a producer numbers from 1")
		}
		records := [][]byte{a}
		body := a
		m := Meta{Level: "INFO", Producer: "p", Seq: seq, Window: 100, Durations: "dur,took"}
		if batch {
			m.Durations = "" // a batch's records have no list
			records = append(records, b)
			body = AppendRecord(AppendRecord(nil, 0, a), 1, b)
			m.Records = 2
			if len(body) != BatchSize(2, len(a)+len(b)) {
				t.Fatalf("batch of %d bytes, BatchSize says %d", len(body), BatchSize(2, len(a)+len(b)))
			}
		}
		h := amqp.Table{}
		m.SetHeaders(h)
		if got := ParseHeaders(h); got != m {
			t.Fatalf("headers read back %+v, want %+v", got, m)
		}
		if !batch && (!IsDuration(m.Durations, "took") || IsDuration(m.Durations, "to")) {
			t.Fatalf("IsDuration(%q) wrong", m.Durations)
		}
		i := 0
		for s, rec := range Records(body, m.ContentType(), seq) {
			if !bytes.Equal(rec, records[i]) || s != seq+uint64(i) {
				t.Fatalf("record %d: %q seq %d, want %q seq %d", i, rec, s, records[i], seq+uint64(i))
			}
			i++
		}
		if i != len(records) {
			t.Fatalf("%d records back, want %d", i, len(records))
		}
	})
}

func TestMessageID(t *testing.T) {
	if got := MessageID("3fa2", 138); got != "3fa2-138" {
		t.Errorf("MessageID = %q", got)
	}
	// One allocation, the string itself: the publisher makes one per message.
	if n := testing.AllocsPerRun(100, func() { _ = MessageID("3fa2c9d1e0b4a7f6", 1<<40) }); n > 1 {
		t.Errorf("MessageID allocates %v times", n)
	}
}

func TestParseHeadersOfOtherProducers(t *testing.T) {
	m := ParseHeaders(amqp.Table{HeaderSeq: "7", HeaderProducer: 1})
	if m != (Meta{}) {
		t.Errorf("foreign headers read as %+v", m)
	}
	if m := ParseHeaders(amqp.Table{HeaderSeq: int64(5)}); m.Seq != 0 {
		t.Errorf("a seq without a producer is tracked: %+v", m)
	}
}

// A producer reuses one table: from message to message only the seq is
// boxed anew, and a header that goes to zero goes away.
func TestSetHeadersReusesTheTable(t *testing.T) {
	h := amqp.Table{}
	m := Meta{Level: "INFO", Producer: "3fa2", Seq: 1000, Window: 4096, Durations: "took"}
	m.SetHeaders(h)
	if n := testing.AllocsPerRun(100, func() { m.Seq++; m.SetHeaders(h) }); n > 1 {
		t.Errorf("SetHeaders on a reused table allocates %v times", n)
	}
	m.Durations, m.Records = "", 3
	m.SetHeaders(h)
	if _, ok := h[HeaderDurations]; ok || h[HeaderRecords] != int64(3) {
		t.Errorf("headers not updated: %v", h)
	}
	if got := ParseHeaders(h); got != m {
		t.Errorf("headers read back %+v, want %+v", got, m)
	}
}
