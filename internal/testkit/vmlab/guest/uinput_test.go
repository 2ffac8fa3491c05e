//go:build vmlabguest && linux

package guest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The parts of the input and uinput UAPI (linux/input.h, linux/uinput.h) these checks use.
const (
	evSyn        = 0
	evKey        = 1
	synReport    = 0
	keyMicMute   = 248
	busVirtual   = 0x06
	uiDevCreate  = 1    // _IO('U', 1)
	uiDevSetup   = 3    // _IOW('U', 3, struct uinput_setup)
	uiSetEvBit   = 100  // _IOW('U', 100, int)
	uiSetKeyBit  = 101  // _IOW('U', 101, int)
	uiGetSysname = 44   // _IOC(_IOC_READ, 'U', 44, len)
	eviocgName   = 0x06 // _IOC(_IOC_READ, 'E', 0x06, len)
	eviocgBit    = 0x20 // + event type: _IOC(_IOC_READ, 'E', 0x20+ev, len)
)

type uinputSetup struct {
	BusType, Vendor, Product, Version uint16 // struct input_id
	Name                              [80]byte
	FFEffectsMax                      uint32
}

// inputEvent is struct input_event: a timeval, then type, code, value.
type inputEvent struct {
	Time  unix.Timeval
	Type  uint16
	Code  uint16
	Value int32
}

// TestUinput creates a uinput keyboard with KEY_MICMUTE, finds the event device the kernel
// made for it, and reads back a press and release written to uinput: the path a USB
// speakerphone's mute key takes.
func TestUinput(t *testing.T) {
	const name = "roombox-vmlab-mute"
	ui, err := unix.Open("/dev/uinput", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ui) // destroys the device
	intReq := func(nr uintptr) uintptr { return ioc(iocWrite, 'U', nr, unsafe.Sizeof(int32(0))) }
	if err := ioctlInt(ui, intReq(uiSetEvBit), evKey); err != nil {
		t.Fatalf("UI_SET_EVBIT EV_KEY: %v", err)
	}
	if err := ioctlInt(ui, intReq(uiSetKeyBit), keyMicMute); err != nil {
		t.Fatalf("UI_SET_KEYBIT KEY_MICMUTE: %v", err)
	}
	setup := uinputSetup{BusType: busVirtual, Vendor: 0x1d6b, Product: 0x0104, Version: 1}
	copy(setup.Name[:], name)
	if err := ioctlPtr(ui, iocWrite, 'U', uiDevSetup, &setup); err != nil {
		t.Fatalf("UI_DEV_SETUP: %v", err)
	}
	if err := ioctlInt(ui, ioc(iocNone, 'U', uiDevCreate, 0), 0); err != nil {
		t.Fatalf("UI_DEV_CREATE: %v", err)
	}
	var sysname [64]byte
	if err := ioctlPtr(ui, iocRead, 'U', uiGetSysname, &sysname); err != nil {
		t.Fatalf("UI_GET_SYSNAME: %v", err)
	}
	node := eventNode(t, cstr(sysname[:]))

	ev, err := unix.Open(node, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ev)
	var got [80]byte
	if err := ioctlPtr(ev, iocRead, 'E', eviocgName, &got); err != nil || cstr(got[:]) != name {
		t.Fatalf("%s: EVIOCGNAME = %q, %v; want %q", node, cstr(got[:]), err, name)
	}
	var keys [(keyMicMute + 8) / 8]byte
	if err := ioctlPtr(ev, iocRead, 'E', eviocgBit+evKey, &keys); err != nil || keys[keyMicMute/8]&(1<<(keyMicMute%8)) == 0 {
		t.Fatalf("%s: EVIOCGBIT(EV_KEY) = %x, %v: KEY_MICMUTE not advertised", node, keys, err)
	}

	for _, v := range []int32{1, 0} {
		for _, e := range []inputEvent{{Type: evKey, Code: keyMicMute, Value: v}, {Type: evSyn, Code: synReport}} {
			if err := binary.Write(fdWriter(ui), binary.NativeEndian, e); err != nil {
				t.Fatalf("write to uinput: %v", err)
			}
		}
	}
	for _, want := range []inputEvent{
		{Type: evKey, Code: keyMicMute, Value: 1}, {Type: evSyn, Code: synReport},
		{Type: evKey, Code: keyMicMute, Value: 0}, {Type: evSyn, Code: synReport},
	} {
		var e inputEvent
		if err := binary.Read(fdReader(ev), binary.NativeEndian, &e); err != nil {
			t.Fatalf("read %s: %v", node, err)
		}
		if e.Type != want.Type || e.Code != want.Code || e.Value != want.Value {
			t.Fatalf("%s: event type %d code %d value %d, want type %d code %d value %d",
				node, e.Type, e.Code, e.Value, want.Type, want.Code, want.Value)
		}
		if e.Time.Sec == 0 && e.Time.Usec == 0 {
			t.Errorf("%s: event without a timestamp", node)
		}
	}
}

// eventNode is the /dev/input/eventN of the input device sysname ("input3"): devtmpfs makes
// the node when the device is registered, before UI_DEV_CREATE returns, but the lookup still
// allows a moment for it.
func eventNode(t *testing.T, sysname string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join("/sys/class/input", sysname, "event*"))
		if len(m) == 1 {
			node := "/dev/input/" + filepath.Base(m[0])
			if _, err := os.Stat(node); err == nil {
				return node
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event node for %s (sysfs %v)", sysname, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fdReader and fdWriter let encoding/binary use a raw fd: one event per read or write, as
// evdev and uinput require.
type fdReader int

func (f fdReader) Read(p []byte) (int, error) { return unix.Read(int(f), p) }

type fdWriter int

func (f fdWriter) Write(p []byte) (int, error) { return unix.Write(int(f), p) }
