package paragontest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/paragon-outbox/outbox-relay/internal/paragon"
	"github.com/paragon-outbox/outbox-relay/internal/paragonlocal"
	"github.com/paragon-outbox/outbox-relay/internal/paragontest"
)

func TestSetupDeliversAndVerifies(t *testing.T) {
	p := paragontest.New(t, paragontest.Options{})
	ev := paragon.Event{Name: "Lead Created", UserID: "usr_1", Payload: []byte(`{"eventId":"e-1"}`)}
	if res := p.Client.Send(context.Background(), ev); res.Outcome != paragon.Delivered || res.Status != http.StatusCreated {
		t.Fatalf("send: %+v", res)
	}
	got := p.Server.Received()
	if len(got) != 1 || got[0].Sub != "usr_1" || got[0].EventID != "e-1" {
		t.Fatalf("received %+v", got)
	}
	// A key the endpoint does not know is refused with 401.
	other, _ := paragontest.NewKey(t)
	bad := p.NewClient(t, p.NewTokens(t, other), nil)
	if res := bad.Send(context.Background(), ev); res.Status != http.StatusUnauthorized {
		t.Fatalf("foreign key: %+v", res)
	}
}

func TestSetupOptions(t *testing.T) {
	p := paragontest.New(t, paragontest.Options{
		ProjectID: "proj-x",
		Faults:    paragonlocal.Faults{Fail500: 1},
		Endpoint:  func(c *paragonlocal.Config) { c.DiscardPayloads = true },
		Client:    func(c *paragon.ClientConfig) { c.MaxPayloadBytes = 10 },
	})
	if p.ProjectID != "proj-x" {
		t.Fatalf("project %q", p.ProjectID)
	}
	ev := paragon.Event{Name: "Lead Created", UserID: "u", Payload: []byte(`{"a":"too long for ten bytes"}`)}
	if res := p.Client.Send(context.Background(), ev); res.Outcome != paragon.Rejected || res.Status != 0 {
		t.Fatalf("payload over the client's limit: %+v", res)
	}
	ev.Payload = []byte(`{}`)
	if res := p.Client.Send(context.Background(), ev); res.Status != http.StatusInternalServerError {
		t.Fatalf("with Fail500=1: %+v", res)
	}
}
