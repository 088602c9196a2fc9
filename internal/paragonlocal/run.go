package paragonlocal

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ShutdownTimeout bounds the graceful shutdown ListenAndServe does when its
// context ends (10 s); requests still running after it are canceled.
const ShutdownTimeout = 10 * time.Second

// newHTTPServer returns the http.Server used by Start. There is no
// WriteTimeout, because injected Slow and Latency delays are meant to be
// longer than a client may wait.
func newHTTPServer(base context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       90 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// Start listens on addr (e.g. "127.0.0.1:0" for a free port; a host of ""
// or an unspecified IP such as ":0" is reported as 127.0.0.1) and serves s in
// the background. It returns the base URL "http://HOST:PORT" (no trailing
// slash; events go to baseURL + "/projects/{projectId}/sdk/events/trigger")
// and stop, which shuts the server down gracefully: it waits for running
// requests until stop's ctx ends, then cancels them (Slow and Latency waits
// end with 503) and closes every connection. stop returns nil after a clean
// shutdown, ctx.Err() when the wait was cut short, or the serve error if
// serving had failed; later calls return the same result. err is the listen
// error, if any.
func Start(addr string, s *Server) (baseURL string, stop func(context.Context) error, err error) {
	r, err := start(addr, s)
	if err != nil {
		return "", nil, err
	}
	return r.baseURL, r.stop, nil
}

type running struct {
	baseURL  string
	srv      *http.Server
	cancel   context.CancelFunc
	served   chan struct{} // closed when Serve returned
	serveErr error         // valid after served is closed
	once     sync.Once
	result   error
}

func start(addr string, s *Server) (*running, error) {
	if s == nil {
		return nil, errors.New("paragonlocal: Start needs a Server")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("paragonlocal: listen %s: %w", addr, err)
	}
	base, cancel := context.WithCancel(context.Background())
	r := &running{srv: newHTTPServer(base, s), cancel: cancel, served: make(chan struct{})}
	go func() {
		err := r.srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			r.serveErr = fmt.Errorf("paragonlocal: serve: %w", err)
		}
		close(r.served)
	}()
	tcp := ln.Addr().(*net.TCPAddr)
	host := tcp.IP
	if host == nil || host.IsUnspecified() {
		host = net.IPv4(127, 0, 0, 1)
	}
	r.baseURL = "http://" + net.JoinHostPort(host.String(), strconv.Itoa(tcp.Port))
	return r, nil
}

func (r *running) stop(ctx context.Context) error {
	r.once.Do(func() {
		err := r.srv.Shutdown(ctx)
		r.cancel() // ends Slow/Latency waits of requests Shutdown gave up on
		if err != nil {
			_ = r.srv.Close()
		}
		<-r.served
		if r.serveErr != nil {
			err = r.serveErr
		}
		r.result = err
	})
	return r.result
}

// ListenAndServe serves s on addr until ctx is done, then shuts down
// gracefully (waiting up to ShutdownTimeout for running requests). It returns
// nil after a clean shutdown, or the listen, serve or shutdown error.
func ListenAndServe(ctx context.Context, addr string, s *Server) error {
	r, err := start(addr, s)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-r.served:
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	return r.stop(sctx)
}

// GenerateKey makes a throwaway 2048-bit RSA signing key for demos and tests,
// standing in for a Paragon project's Signing Key. It returns the private key
// and its PKCS#8 PEM encoding ("-----BEGIN PRIVATE KEY-----"), the form
// Paragon's dashboard shows. The public half, &key.PublicKey, goes into
// Config.PublicKey. Errors come from crypto/rand or x509.
func GenerateKey() (*rsa.PrivateKey, []byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("paragonlocal: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("paragonlocal: encode key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
