package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
)

// The benchmarks below measure what one App Event costs the two in-process
// parts that share the CPU with the relay during `outbox-relay bench`: the
// local endpoint's handler (token check from cache, JSON validation,
// record) and the relay's HTTP client round trip over loopback. Neither
// package is being tuned here; the figures tell how much of a 2-core
// machine the harness itself takes at a given events/s.

type endpointFixture struct {
	p       *paragontest.Setup
	srv     *paragonlocal.Server
	tokens  *paragon.Tokens
	payload []byte
}

func newEndpointFixture(b *testing.B) *endpointFixture {
	b.Helper()
	p := paragontest.New(b, paragontest.Options{
		ProjectID: "bench-project",
		Endpoint:  func(c *paragonlocal.Config) { c.DiscardPayloads = true },
	})
	raw, err := os.ReadFile("../../testdata/lead-created.example.json")
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		b.Fatal(err)
	}
	return &endpointFixture{p: p, srv: p.Server, tokens: p.Tokens, payload: buf.Bytes()}
}

// BenchmarkEndpointServeHTTP: the local endpoint's handler for one accepted
// event, without the network.
func BenchmarkEndpointServeHTTP(b *testing.B) {
	f := newEndpointFixture(b)
	tok, err := f.tokens.Token("usr_bench")
	if err != nil {
		b.Fatal(err)
	}
	body := paragon.AppendBody(nil, "Lead Created", f.payload)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/projects/bench-project/sdk/events/trigger", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if i++; i%100_000 == 0 {
			f.srv.Reset() // it keeps every accepted event
		}
	}
}

// BenchmarkClientSendLoopback: one App Event sent by the relay's Paragon
// client to the local endpoint over loopback keep-alive connections, many
// in flight: ns/op is the CPU both sides spend per event, so 1e9/ns/op is
// the most events/s this process could deliver with a free database.
func BenchmarkClientSendLoopback(b *testing.B) {
	f := newEndpointFixture(b)
	c := f.p.NewClient(b, f.tokens, func(cc *paragon.ClientConfig) { cc.MaxConns = 64 })
	ev := paragon.Event{Name: "Lead Created", UserID: "usr_bench", Payload: f.payload}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16) // like the relay: many sends in flight
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := c.Send(ctx, ev); res.Outcome != paragon.Delivered {
				b.Errorf("send: %v %v", res.Status, res.Err)
				return
			}
		}
	})
}
