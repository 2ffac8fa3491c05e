package signaling

import (
	"errors"
	"io"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// RTCPReaders returns one loop per encoding of the publication (one per simulcast layer):
// each reads that encoding's RTCP and hands it to the layer (LayerTrack.OnRTCP) and then to
// f, until the session closes the connection. The caller runs each on a goroutine it owns
// and waits for after closing the session. Reading also drives pion's interceptors (NACK,
// reports, congestion control), so every encoding must be read even with no f.
func (p Publication) RTCPReaders(f func([]rtcp.Packet)) []func() {
	if p.Video == nil {
		return []func(){func() { readRTCP(p.Sender, "", f) }}
	}
	var loops []func()
	for _, l := range p.Video.layers {
		loops = append(loops, func() {
			readRTCP(p.Sender, l.rid, func(pkts []rtcp.Packet) {
				l.handleRTCP(pkts)
				if f != nil {
					f(pkts)
				}
			})
		})
	}
	return loops
}

// readRTCP reads the RTCP of sender's encoding rid ("": a plain track) until the sender is
// stopped or its connection closed. A batch an interceptor refuses (congestion control
// rejects feedback it cannot place) is skipped: the next read is the next batch.
func readRTCP(sender *webrtc.RTPSender, rid string, f func([]rtcp.Packet)) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = sender.ReadRTCP()
		} else {
			pkts, _, err = sender.ReadSimulcastRTCP(rid)
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe):
			return
		case err != nil:
			if t := sender.Transport(); t == nil || t.State() == webrtc.DTLSTransportStateClosed ||
				t.State() == webrtc.DTLSTransportStateFailed {
				return
			}
		case f != nil:
			f(pkts)
		}
	}
}
