package media

import (
	"fmt"
	"time"

	"gopkg.in/hraban/opus.v2"
)

// Opus framing used throughout: 48 kHz mono, 20 ms frames.
const (
	OpusSampleRate    = 48000
	OpusFrameDuration = 20 * time.Millisecond
	OpusFrameSamples  = OpusSampleRate / 50
)

// maxOpusPacket is the largest packet libopus produces for one frame (RFC 6716 3.4: 1275
// bytes of a single frame plus the TOC byte).
const maxOpusPacket = 1276

// maxOpusSamples is the longest packet's duration in samples: 120 ms (RFC 6716 3.2.5).
const maxOpusSamples = OpusSampleRate * 120 / 1000

// OpusEncoder encodes 20 ms mono frames. It is not safe for concurrent use.
type OpusEncoder struct {
	enc *opus.Encoder
	buf []byte
}

// NewOpusEncoder returns a 48 kHz mono encoder tuned for speech (VoIP application) at
// bitrate bits per second (default 32 kbit/s when 0).
func NewOpusEncoder(bitrate int) (*OpusEncoder, error) {
	if bitrate == 0 {
		bitrate = 32_000
	}
	enc, err := opus.NewEncoder(OpusSampleRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("media: opus encoder: %w", err)
	}
	e := &OpusEncoder{enc: enc, buf: make([]byte, maxOpusPacket)}
	if err := e.SetBitrate(bitrate); err != nil {
		return nil, err
	}
	// In-band FEC as the SDP's useinbandfec=1 promises; it costs nothing until a loss is
	// expected (SetPacketLoss).
	if err := enc.SetInBandFEC(true); err != nil {
		return nil, fmt.Errorf("media: opus fec: %w", err)
	}
	return e, nil
}

// SetDTX turns discontinuous transmission on or off: in silence the encoder then makes
// packets of at most two bytes that need not be sent (EncoderTuner).
func (e *OpusEncoder) SetDTX(on bool) error {
	if err := e.enc.SetDTX(on); err != nil {
		return fmt.Errorf("media: opus dtx %v: %w", on, err)
	}
	return nil
}

// SetPacketLoss tells the encoder how many packets in a hundred to expect lost, so its
// in-band FEC carries enough of each frame in the next (EncoderTuner).
func (e *OpusEncoder) SetPacketLoss(percent int) error {
	if err := e.enc.SetPacketLossPerc(percent); err != nil {
		return fmt.Errorf("media: opus packet loss %d%%: %w", percent, err)
	}
	return nil
}

// SetBitrate changes the target bitrate in bits per second.
func (e *OpusEncoder) SetBitrate(bps int) error {
	if err := e.enc.SetBitrate(bps); err != nil {
		return fmt.Errorf("media: opus bitrate %d: %w", bps, err)
	}
	return nil
}

// Encode compresses one 20 ms frame (OpusFrameSamples samples). The packet is valid until
// the next call.
func (e *OpusEncoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != OpusFrameSamples {
		return nil, fmt.Errorf("media: opus frame of %d samples, want %d", len(pcm), OpusFrameSamples)
	}
	n, err := e.enc.Encode(pcm, e.buf)
	if err != nil {
		return nil, fmt.Errorf("media: opus encode: %w", err)
	}
	return e.buf[:n], nil
}

// OpusDecoder decodes 48 kHz mono packets; for tests and the speaker path. It is not safe
// for concurrent use.
type OpusDecoder struct {
	dec *opus.Decoder
	pcm []int16
}

// NewOpusDecoder returns a 48 kHz mono decoder.
func NewOpusDecoder() (*OpusDecoder, error) {
	dec, err := opus.NewDecoder(OpusSampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("media: opus decoder: %w", err)
	}
	return &OpusDecoder{dec: dec, pcm: make([]int16, maxOpusSamples)}, nil
}

// Decode returns the samples of one packet, valid until the next call.
func (d *OpusDecoder) Decode(packet []byte) ([]int16, error) {
	n, err := d.dec.Decode(packet, d.pcm)
	if err != nil {
		return nil, fmt.Errorf("media: opus decode: %w", err)
	}
	return d.pcm[:n], nil
}

// Conceal returns samples standing in for a lost packet of that many samples (a multiple
// of 2.5 ms): recovered from the in-band FEC of next, the packet after the lost one, when
// it is given and carries FEC, otherwise predicted by libopus's packet loss concealment,
// which fades towards silence when repeated. Valid until the next call.
func (d *OpusDecoder) Conceal(next []byte, samples int) ([]int16, error) {
	if samples <= 0 || samples > len(d.pcm) {
		return nil, fmt.Errorf("media: opus conceal: %d samples (want 1 to %d)", samples, len(d.pcm))
	}
	// libopus takes the duration from the buffer's capacity, not its length.
	pcm := d.pcm[:samples:samples]
	var err error
	if len(next) > 0 {
		err = d.dec.DecodeFEC(next, pcm)
	} else {
		err = d.dec.DecodePLC(pcm)
	}
	if err != nil {
		return nil, fmt.Errorf("media: opus conceal: %w", err)
	}
	return pcm, nil
}
