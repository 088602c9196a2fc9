package startstop_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/startstop"
)

type loop struct {
	startstop.Base
	runs    atomic.Int32
	running atomic.Int32
}

func (l *loop) Start(ctx context.Context) error {
	ctx, ok, done := l.StartInit(ctx)
	if !ok {
		return nil
	}
	l.runs.Add(1)
	l.running.Add(1)
	go func() {
		defer done()
		defer l.running.Add(-1)
		<-ctx.Done()
	}()
	return nil
}

func TestStartTwiceRunsOnceAndStopWaits(t *testing.T) {
	var l loop
	l.Stop() // without Start: returns
	ctx := context.Background()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := l.runs.Load(); n != 1 {
		t.Fatalf("started %d goroutines, want 1", n)
	}
	startstop.StopAll(&l, &l)
	if n := l.running.Load(); n != 0 {
		t.Fatalf("Stop returned with %d goroutines running", n)
	}
	l.Stop()
	// A stopped service starts again.
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	l.Stop()
	if n := l.runs.Load(); n != 2 {
		t.Fatalf("runs = %d, want 2", n)
	}
}

func TestCancelledStartContextEndsTheService(t *testing.T) {
	var l loop
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	l.Stop()
	if n := l.running.Load(); n != 0 {
		t.Fatalf("%d goroutines running after Stop", n)
	}
}
