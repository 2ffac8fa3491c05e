package signaling

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livekit/protocol/livekit"
	"google.golang.org/protobuf/proto"
)

// FuzzHandleSignalResponse feeds arbitrary server messages to a live session's handler:
// whatever the server sends, the client must not panic. The seed corpus runs in make test.
func FuzzHandleSignalResponse(f *testing.F) {
	seeds := []*livekit.SignalResponse{
		joinResponse(),
		{Message: &livekit.SignalResponse_Offer{Offer: &livekit.SessionDescription{Type: "offer", Sdp: "v=0\r\ngarbage"}}},
		{Message: &livekit.SignalResponse_Answer{Answer: &livekit.SessionDescription{Type: "answer", Sdp: ""}}},
		{Message: &livekit.SignalResponse_Trickle{Trickle: &livekit.TrickleRequest{CandidateInit: `{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}`, Target: livekit.SignalTarget_SUBSCRIBER}}},
		{Message: &livekit.SignalResponse_Update{Update: &livekit.ParticipantUpdate{Participants: []*livekit.ParticipantInfo{
			{Sid: "PA_x", Identity: "x", Tracks: []*livekit.TrackInfo{{Sid: "TR_a", Type: livekit.TrackType_AUDIO}}},
			nil,
		}}}},
		{Message: &livekit.SignalResponse_TrackPublished{TrackPublished: &livekit.TrackPublishedResponse{Cid: "camera"}}},
		{Message: &livekit.SignalResponse_Mute{Mute: &livekit.MuteTrackRequest{Sid: "TR_a", Muted: true}}},
		{Message: &livekit.SignalResponse_RefreshToken{RefreshToken: "a.b.c"}},
		{Message: &livekit.SignalResponse_PongResp{PongResp: &livekit.Pong{LastPingTimestamp: -1}}},
		{Message: &livekit.SignalResponse_SpeakersChanged{SpeakersChanged: &livekit.SpeakersChanged{Speakers: []*livekit.SpeakerInfo{{Sid: "PA_x", Level: 1}}}}},
		{Message: &livekit.SignalResponse_RequestResponse{RequestResponse: &livekit.RequestResponse{Reason: livekit.RequestResponse_LIMIT_EXCEEDED}}},
		{Message: &livekit.SignalResponse_Leave{Leave: &livekit.LeaveRequest{Action: livekit.LeaveRequest_RESUME}}},
		{},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	s, _, _, err := connectFakeServer(f, joinResponse())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg := &livekit.SignalResponse{}
		if proto.Unmarshal(data, msg) != nil {
			return // the transport drops undecodable frames (TestGarbledFramesResume)
		}
		s.handle(msg)
	})
}

// wsServer is a minimal signal server: the first connection gets a join and then whatever
// the test scripts; a resume (reconnect=1) gets a ReconnectResponse.
type wsServer struct {
	*httptest.Server
	resumes atomic.Int32
}

func newWSServer(t *testing.T, afterJoin func(c *websocket.Conn)) *wsServer {
	t.Helper()
	ws := &wsServer{}
	up := websocket.Upgrader{}
	ws.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		send := func(m *livekit.SignalResponse) {
			b, _ := proto.Marshal(m)
			_ = c.WriteMessage(websocket.BinaryMessage, b)
		}
		if r.URL.Query().Get("reconnect") == "1" {
			ws.resumes.Add(1)
			send(&livekit.SignalResponse{Message: &livekit.SignalResponse_Reconnect{Reconnect: &livekit.ReconnectResponse{}}})
		} else {
			send(joinResponse())
			afterJoin(c)
		}
		// Hold the connection until the client closes it.
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(ws.Close)
	return ws
}

// Garbled or oversized frames from the server end the signal connection cleanly and the
// session resumes on a new one — no crash, no stuck session.
func TestGarbledFramesResume(t *testing.T) {
	tests := []struct {
		name  string
		frame func() []byte
	}{
		{"garbled protobuf", func() []byte { return []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f} }},
		{"oversized frame", func() []byte { return []byte(strings.Repeat("x", maxMessageSize+1)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWSServer(t, func(c *websocket.Conn) {
				_ = c.WriteMessage(websocket.BinaryMessage, tc.frame())
			})
			events := &eventLog{ch: make(chan Event, 64)}
			s, err := Connect(context.Background(), "ws"+strings.TrimPrefix(ws.URL, "http"), "tok", Options{
				OnEvent: events.add, ResumeBackoff: func(int) time.Duration { return 10 * time.Millisecond },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			waitEvent[Reconnected](t, events)
			if ws.resumes.Load() != 1 {
				t.Fatalf("%d resumes, want 1", ws.resumes.Load())
			}
			select {
			case <-s.Done():
				t.Fatalf("session ended: %v", s.Err())
			default:
			}
		})
	}
}
