// Package startstop is the small start/stop discipline every background
// part of the relay follows, after River's rivershared/startstop: Start
// returns at once with the work running in a goroutine, Stop cancels it and
// waits until it has finished, and both tolerate being called twice (a
// second Start does nothing; Stop without Start, or a second Stop, returns
// at once after the first has finished).
//
// A service embeds Base and writes its Start as:
//
//	func (s *Service) Start(ctx context.Context) error {
//		ctx, ok, done := s.StartInit(ctx)
//		if !ok {
//			return nil // already started
//		}
//		go func() {
//			defer done()
//			s.loop(ctx) // returns when ctx is done
//		}()
//		return nil
//	}
//
// Stop comes from Base.
package startstop

import (
	"context"
	"sync"
)

// Service is a background part with a Start that returns at once and a Stop
// that waits.
type Service interface {
	// Start begins the work in the background and returns; the work ends
	// when ctx does or Stop is called.
	Start(ctx context.Context) error
	// Stop ends the work and waits for it to finish. Safe to call twice and
	// without Start.
	Stop()
}

// Base implements Stop for a service that embeds it; see the package doc.
// Its zero value is ready to use. A stopped service may be started again.
type Base struct {
	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{} // nil: not running
}

// StartInit prepares a start: it returns the context the service's goroutine
// must run under, ok=false if the service is already running (then do
// nothing), and done, which that goroutine must call when it returns.
func (b *Base) StartInit(ctx context.Context) (runCtx context.Context, ok bool, done func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped != nil {
		return ctx, false, func() {}
	}
	stopped := make(chan struct{})
	b.stopped = stopped
	runCtx, b.cancel = context.WithCancel(ctx)
	return runCtx, true, sync.OnceFunc(func() { close(stopped) })
}

// Stop cancels the service's context and waits until its goroutine called
// done. It returns at once if the service is not running.
func (b *Base) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped == nil {
		return
	}
	b.cancel()
	<-b.stopped
	b.stopped, b.cancel = nil, nil
}

// StopAll stops every service at once and waits for all of them.
func StopAll(services ...Service) {
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Stop()
		}()
	}
	wg.Wait()
}
