// Package evdev reads the board's buttons from Linux input devices (/dev/input/event*):
// gpio-keys overlays, USB HID speakerphones and keyboards that report KEY_MICMUTE,
// KEY_MUTE, KEY_VOLUMEUP, KEY_VOLUMEDOWN or KEY_CAMERA. Devices are found by what keys
// they have (EVIOCGBIT), not by path, and found again after an unplug.
//
// Buttons is a raw hal.Buttons: one Press or Release per key edge, stamped with the
// injected clock when read (the kernel's stamps are wall-clock time, which jumps when a
// board without an RTC syncs NTP). Key autorepeat (value 2) is dropped: hal/button makes
// the repeats of held volume keys, so wrap Buttons in button.New like any raw source.
//
// The devices are not grabbed by default, so a desktop still sees its keys; Config.Grab
// takes them for this reader alone (EVIOCGRAB).
package evdev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"roombox/hal"
	"roombox/hal/linux/evdev/internal/input"
	"roombox/internal/backoff"
)

// ErrUnplugged is why a device stopped: it was unplugged (a read returned ENODEV).
var ErrUnplugged = errors.New("evdev: device unplugged")

// Key codes (linux/input-event-codes.h) the default map knows.
const (
	KeyMute         = input.KeyMute
	KeyVolumeDown   = input.KeyVolumeDown
	KeyVolumeUp     = input.KeyVolumeUp
	KeyCamera       = input.KeyCamera
	KeyMicMute      = input.KeyMicMute
	KeyCameraToggle = input.KeyCameraToggle
)

// DefaultKeys maps key codes to the board's buttons.
var DefaultKeys = map[uint16]string{
	KeyMicMute:      hal.ButtonMic,
	KeyMute:         hal.ButtonSpeaker,
	KeyVolumeUp:     hal.ButtonVolumeUp,
	KeyVolumeDown:   hal.ButtonVolumeDown,
	KeyCamera:       hal.ButtonCamera,
	KeyCameraToggle: hal.ButtonCamera,
}

// rescan is the delay between scans: after an unplug or a scan that opened a device the next
// scan comes after 500 ms, and each scan that finds nothing doubles the delay up to 30 s.
// There is no jitter: a board's rescans compete with nobody.
var rescan = backoff.Policy{Base: 500 * time.Millisecond, Max: 30 * time.Second}

// eventBatch is how many events one read takes; the kernel queues whole events.
const eventBatch = 64

// Config sets up Buttons.
type Config struct {
	// Clock stamps events and times rescans. Required.
	Clock hal.Clock
	// Keys maps key codes to button names; nil means DefaultKeys.
	Keys map[uint16]string
	// Names, when set, admits only devices with these names (EVIOCGNAME), such as
	// "gpio-keys", so a desktop keyboard's KEY_MUTE is left alone.
	Names []string
	// Grab takes the devices for this reader alone.
	Grab bool
	// Log receives opens, unplugs and read errors; nil discards them.
	Log *slog.Logger

	sys system // nil: the real /dev/input; tests replace it
}

// Info identifies an open input device.
type Info struct {
	Path string // /dev/input/eventN
	Name string // EVIOCGNAME, e.g. "gpio-keys" or "Jabra SPEAK 510 USB"
}

// system is the seam to /dev/input: device_linux.go has the real one, tests a fake.
type system interface {
	Paths() ([]string, error)
	Open(path string) (device, error)
}

// device is one opened event device.
type device interface {
	// Read reads whole struct input_events; it fails with ENODEV once unplugged.
	Read(p []byte) (int, error)
	// SetReadDeadline interrupts a blocked Read, which is how ctx stops a reader.
	SetReadDeadline(t time.Time) error
	Name() (string, error)
	KeyBits(bits *[input.KeyBitmapBytes]byte) error  // EVIOCGBIT(EV_KEY): the keys it has
	KeyState(bits *[input.KeyBitmapBytes]byte) error // EVIOCGKEY: the keys held now
	Grab() error
	Close() error
}

// Buttons reads the mapped keys of every matching input device. It is a hal.Buttons.
type Buttons struct {
	cfg    Config
	names  []string
	events chan hal.ButtonEvent
	cancel context.CancelFunc
	done   chan struct{} // closed when the scanner and its readers have stopped

	mu      sync.Mutex
	open    []*openDevice
	lost    []*openDevice      // readers that stopped, for the scanner to close
	wake    context.CancelFunc // interrupts the scanner's wait; nil when not waiting
	changed chan struct{}      // closed and replaced when open changes
}

type openDevice struct {
	info     Info
	dev      device
	down     [input.KeyBitmapBytes]byte // the mapped keys this device holds down
	dropping bool                       // after SYN_DROPPED, until the next SYN_REPORT
}

// Open starts looking for devices with the mapped keys and reading them until ctx ends or
// Close. Finding none is not an error: a USB speakerphone may be plugged in later.
func Open(ctx context.Context, cfg Config) (*Buttons, error) {
	if cfg.Clock == nil {
		return nil, errors.New("evdev: no clock")
	}
	if cfg.Keys == nil {
		cfg.Keys = DefaultKeys
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.sys == nil {
		cfg.sys = linuxSystem{}
	}
	b := &Buttons{
		cfg:     cfg,
		events:  make(chan hal.ButtonEvent),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	for code, name := range cfg.Keys {
		if code > input.KeyMax {
			return nil, fmt.Errorf("evdev: key code %d for %q out of range (max %d)", code, name, input.KeyMax)
		}
		if !slices.Contains(b.names, name) {
			b.names = append(b.names, name)
		}
	}
	slices.Sort(b.names)
	ctx, b.cancel = context.WithCancel(ctx)
	go func() {
		defer close(b.done)
		b.scanLoop(ctx)
	}()
	return b, nil
}

// Names returns the button names the key map produces.
func (b *Buttons) Names() []string { return slices.Clone(b.names) }

// ReadEvent returns the next key edge, blocking until there is one, ctx ends or b closes.
func (b *Buttons) ReadEvent(ctx context.Context) (hal.ButtonEvent, error) {
	select {
	case ev := <-b.events:
		return ev, nil
	case <-b.done:
		return hal.ButtonEvent{}, fmt.Errorf("evdev: %w", hal.ErrClosed)
	case <-ctx.Done():
		return hal.ButtonEvent{}, fmt.Errorf("evdev: %w", ctx.Err())
	}
}

// Close stops the readers, closes the devices and waits for it.
func (b *Buttons) Close() error {
	b.cancel()
	<-b.done
	return nil
}

// Devices returns the devices open now.
func (b *Buttons) Devices() []Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.infos()
}

func (b *Buttons) infos() []Info {
	out := make([]Info, 0, len(b.open))
	for _, d := range b.open {
		out = append(out, d.info)
	}
	return out
}

// WaitDevices blocks until ok accepts the open devices, or ctx ends, and returns them.
func (b *Buttons) WaitDevices(ctx context.Context, ok func([]Info) bool) ([]Info, error) {
	for {
		b.mu.Lock()
		infos, changed := b.infos(), b.changed
		b.mu.Unlock()
		if ok(infos) {
			return infos, nil
		}
		select {
		case <-changed:
		case <-b.done:
			return nil, fmt.Errorf("evdev: %w", hal.ErrClosed)
		case <-ctx.Done():
			return nil, fmt.Errorf("evdev: waiting for devices: %w", ctx.Err())
		}
	}
}

// setOpen replaces the open set and wakes WaitDevices; b.mu is held.
func (b *Buttons) setOpen(open []*openDevice) {
	b.open = open
	close(b.changed)
	b.changed = make(chan struct{})
}

// scanLoop opens matching devices, rescanning with backoff, until ctx ends; then it waits
// for the readers and closes every device.
func (b *Buttons) scanLoop(ctx context.Context) {
	var readers sync.WaitGroup
	defer func() {
		readers.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, d := range b.open {
			d.dev.Close()
		}
		b.setOpen(nil)
	}()
	next, fruitless := b.cfg.Clock.Now(), 0 // fruitless: scans in a row that found nothing
	for {
		if err := b.waitUntil(ctx, next); err != nil {
			return
		}
		if b.reap() {
			fruitless = 0 // an unplugged device may come back soon
		} else if b.scan(ctx, &readers) > 0 {
			fruitless = 0
		} else {
			fruitless++
		}
		next = b.cfg.Clock.Now().Add(rescan.Delay(fruitless + 1))
	}
}

// waitUntil waits for the clock to reach t, a reader to stop, or ctx to end.
func (b *Buttons) waitUntil(ctx context.Context, t time.Time) error {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	b.mu.Lock()
	if len(b.lost) > 0 {
		b.mu.Unlock()
		return nil
	}
	b.wake = stop
	b.mu.Unlock()
	err := b.cfg.Clock.Wait(wctx, t)
	b.mu.Lock()
	b.wake = nil
	b.mu.Unlock()
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// reap closes the devices whose readers stopped and reports whether there were any.
func (b *Buttons) reap() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lost) == 0 {
		return false
	}
	open := slices.Clone(b.open)
	for _, d := range b.lost {
		d.dev.Close()
		open = slices.DeleteFunc(open, func(o *openDevice) bool { return o == d })
	}
	b.lost = b.lost[:0]
	b.setOpen(open)
	return true
}

// scan opens the matching devices that are not open yet, starts their readers and returns
// how many it opened.
func (b *Buttons) scan(ctx context.Context, readers *sync.WaitGroup) int {
	paths, err := b.cfg.sys.Paths()
	if err != nil {
		b.cfg.Log.Warn("evdev: listing devices", "err", err)
		return 0
	}
	n := 0
	for _, p := range paths {
		b.mu.Lock()
		known := slices.ContainsFunc(b.open, func(d *openDevice) bool { return d.info.Path == p })
		b.mu.Unlock()
		if known {
			continue
		}
		d, err := b.probe(p)
		if err != nil {
			b.cfg.Log.Debug("evdev: skipping", "path", p, "err", err)
			continue
		}
		if d == nil {
			continue
		}
		b.cfg.Log.Info("evdev: opened", "path", p, "name", d.info.Name)
		b.mu.Lock()
		b.setOpen(append(slices.Clone(b.open), d))
		b.mu.Unlock()
		readers.Go(func() { b.read(ctx, d) })
		n++
	}
	return n
}

// probe opens path and keeps it if it has a mapped key (and an admitted name); it
// returns nil for a device that does not match.
func (b *Buttons) probe(path string) (*openDevice, error) {
	dev, err := b.cfg.sys.Open(path)
	if err != nil {
		return nil, err
	}
	d := &openDevice{info: Info{Path: path}, dev: dev}
	keep := false
	defer func() {
		if !keep {
			dev.Close()
		}
	}()
	if d.info.Name, err = dev.Name(); err != nil {
		return nil, fmt.Errorf("evdev: %s: name: %w", path, err)
	}
	if len(b.cfg.Names) > 0 && !slices.Contains(b.cfg.Names, d.info.Name) {
		return nil, nil
	}
	var bits [input.KeyBitmapBytes]byte
	if err := dev.KeyBits(&bits); err != nil {
		return nil, fmt.Errorf("evdev: %s: key bits: %w", path, err)
	}
	if !b.hasMappedKey(&bits) {
		return nil, nil
	}
	if b.cfg.Grab {
		if err := dev.Grab(); err != nil {
			return nil, fmt.Errorf("evdev: %s: grab: %w", path, err)
		}
	}
	keep = true
	return d, nil
}

func (b *Buttons) hasMappedKey(bits *[input.KeyBitmapBytes]byte) bool {
	for code := range b.cfg.Keys {
		if bit(bits, code) {
			return true
		}
	}
	return false
}

func bit(bits *[input.KeyBitmapBytes]byte, code uint16) bool {
	return bits[code/8]&(1<<(code%8)) != 0
}

func setBit(bits *[input.KeyBitmapBytes]byte, code uint16, on bool) {
	if on {
		bits[code/8] |= 1 << (code % 8)
	} else {
		bits[code/8] &^= 1 << (code % 8)
	}
}

// read turns d's events into button edges until ctx ends or d fails; then it releases the
// keys d held, so a volume key unplugged while down does not repeat forever, and hands d
// to the scanner.
func (b *Buttons) read(ctx context.Context, d *openDevice) {
	// SetReadDeadline is the one way to interrupt a blocked read of a pollable file.
	stop := context.AfterFunc(ctx, func() { d.dev.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err := b.readLoop(ctx, d)
	if ctx.Err() != nil {
		return
	}
	if errors.Is(err, ErrUnplugged) {
		b.cfg.Log.Info("evdev: unplugged", "path", d.info.Path, "name", d.info.Name)
	} else {
		b.cfg.Log.Warn("evdev: read failed; will look again", "path", d.info.Path, "name", d.info.Name, "err", err)
	}
	for code, name := range b.cfg.Keys {
		if bit(&d.down, code) && b.emit(ctx, d, code, name, false) != nil {
			return
		}
	}
	b.mu.Lock()
	b.lost = append(b.lost, d)
	if b.wake != nil {
		b.wake()
	}
	b.mu.Unlock()
}

func (b *Buttons) readLoop(ctx context.Context, d *openDevice) error {
	var buf [eventBatch * input.Size]byte
	for {
		n, err := d.dev.Read(buf[:])
		switch {
		case err != nil && errors.Is(err, syscall.ENODEV):
			return fmt.Errorf("%w: %s: %w", ErrUnplugged, d.info.Path, err)
		case err != nil:
			return fmt.Errorf("evdev: %s: %w", d.info.Path, err)
		case n%input.Size != 0:
			return fmt.Errorf("evdev: %s: read %d bytes, not a whole number of %d-byte events", d.info.Path, n, input.Size)
		}
		for off := 0; off < n; off += input.Size {
			if err := b.handle(ctx, d, input.Decode(buf[off:], input.WordSize)); err != nil {
				return err
			}
		}
	}
}

// handle applies one event of d.
func (b *Buttons) handle(ctx context.Context, d *openDevice, ev input.Event) error {
	switch {
	case ev.Type == input.EvSyn && ev.Code == input.SynDropped:
		// The kernel's queue overflowed: events up to the next SYN_REPORT are incomplete,
		// and the key state is read afresh after it.
		d.dropping = true
	case ev.Type == input.EvSyn && ev.Code == input.SynReport && d.dropping:
		d.dropping = false
		return b.resync(ctx, d)
	case ev.Type == input.EvKey && !d.dropping && ev.Value != input.ValueAutorepeat:
		if name, ok := b.cfg.Keys[ev.Code]; ok {
			return b.emit(ctx, d, ev.Code, name, ev.Value == input.ValuePress)
		}
	}
	return nil
}

// resync emits the edges lost in an overflow by comparing the held keys with d.down.
func (b *Buttons) resync(ctx context.Context, d *openDevice) error {
	var now [input.KeyBitmapBytes]byte
	if err := d.dev.KeyState(&now); err != nil {
		return fmt.Errorf("evdev: %s: key state: %w", d.info.Path, err)
	}
	for code, name := range b.cfg.Keys {
		if held := bit(&now, code); held != bit(&d.down, code) {
			if err := b.emit(ctx, d, code, name, held); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Buttons) emit(ctx context.Context, d *openDevice, code uint16, name string, pressed bool) error {
	setBit(&d.down, code, pressed)
	kind := hal.Release
	if pressed {
		kind = hal.Press
	}
	select {
	case b.events <- hal.ButtonEvent{Button: name, Kind: kind, Pressed: pressed, Time: b.cfg.Clock.Now()}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
