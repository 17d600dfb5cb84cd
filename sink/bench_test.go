package sink

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkDecode is the sink's cost per record before the write, for the
// record logbench sends: most of the sink's CPU in batch mode.
//
//	go test -run '^$' -bench Decode -benchmem ./sink
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"time":"2026-12-02T19:53:29.123456789Z","level":"INFO","msg":"request served","path":"/api/v1/orders","status":200,"pad":"` + strings.Repeat("x", 120) + `"}`)
	ts := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if r := Decode(body, "application/json", ts, 0); r.Malformed != "" {
			b.Fatal(r.Malformed)
		}
	}
}
