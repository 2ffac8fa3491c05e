package signaling_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"roombox/internal/testkit/lktest"
	"roombox/signaling"
)

// peer is a Room with no tracks that records the data it receives.
type peer struct {
	room   *signaling.Room
	mu     sync.Mutex
	got    []signaling.DataMessage
	joined chan struct{}
}

func startPeer(t *testing.T, url, identity string) *peer {
	t.Helper()
	p := &peer{joined: make(chan struct{})}
	var once sync.Once
	p.room = signaling.NewRoom(signaling.RoomOptions{
		URL: url, Tokens: signaling.StaticToken(lktest.Token(t, testRoom, identity)),
		OnData: func(m signaling.DataMessage) {
			p.mu.Lock()
			p.got = append(p.got, m)
			p.mu.Unlock()
		},
		OnEvent: func(e signaling.Event) {
			if _, ok := e.(signaling.Joined); ok {
				once.Do(func() { close(p.joined) })
			}
		},
		Backoff: func(int) time.Duration { return 200 * time.Millisecond },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.room.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-p.joined:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not join", identity)
	}
	return p
}

func (p *peer) messages() []signaling.DataMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]signaling.DataMessage(nil), p.got...)
}

func TestRPCAndDataThroughRealServer(t *testing.T) {
	noLeak(t)
	srv, proxy, w, box := proxiedBox(t)
	if err := box.room.RegisterRPC("greet", func(ctx context.Context, req signaling.RPCRequest) (string, error) {
		return "hello " + req.Caller + ": " + req.Payload, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := box.room.RegisterRPC("refuse", func(ctx context.Context, req signaling.RPCRequest) (string, error) {
		return "", signaling.NewRPCError(2001, "not now", "busy")
	}); err != nil {
		t.Fatal(err)
	}
	caller := startPeer(t, srv.URL, "caller")
	other := startPeer(t, srv.URL, "other")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if got, err := caller.room.PerformRPC(ctx, "box", "greet", "hi", 10*time.Second); err != nil || got != "hello caller: hi" {
		t.Fatalf("greet: %q, %v", got, err)
	}
	var rerr *signaling.RPCError
	if _, err := caller.room.PerformRPC(ctx, "box", "refuse", "", 10*time.Second); !errors.As(err, &rerr) || rerr.Code != 2001 || rerr.Message != "not now" || rerr.Data != "busy" {
		t.Fatalf("refuse: %v, want RPC error 2001 not now/busy", err)
	}
	if _, err := caller.room.PerformRPC(ctx, "box", "nosuch", "", 10*time.Second); !errors.As(err, &rerr) || rerr.Code != signaling.RPCUnsupportedMethod {
		t.Fatalf("unknown method: %v, want 1400", err)
	}

	// A reliable message with a topic to one identity reaches it, and only it.
	if err := box.room.PublishData(ctx, []byte("for caller"), signaling.DataOptions{
		Reliable: true, Topic: "notes", Destinations: []string{"caller"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := box.room.PublishData(ctx, []byte("for all"), signaling.DataOptions{Reliable: true, Topic: "all"}); err != nil {
		t.Fatal(err)
	}
	waitFor := func(p *peer, n int) {
		deadline := time.Now().Add(10 * time.Second)
		for len(p.messages()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("got %d messages, want %d", len(p.messages()), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(caller, 2)
	waitFor(other, 1)
	if m := caller.messages()[0]; m.From != "box" || m.Topic != "notes" || string(m.Payload) != "for caller" || !m.Reliable {
		t.Fatalf("caller got %+v", m)
	}
	for _, m := range other.messages() {
		if m.Topic == "notes" {
			t.Fatalf("a message for caller reached other: %+v", m)
		}
	}

	// After the box's signal connection is cut and resumed, it still answers.
	w.flowing(t, "before the cut")
	proxy.CutAll()
	if ev, _ := waitEvent[signaling.Reconnected](t, box, 15*time.Second); !ev.Resumed {
		t.Fatal("rejoined instead of resuming")
	}
	if got, err := caller.room.PerformRPC(ctx, "box", "greet", "again", 10*time.Second); err != nil || got != "hello caller: again" {
		t.Fatalf("greet after resume: %q, %v", got, err)
	}
}
