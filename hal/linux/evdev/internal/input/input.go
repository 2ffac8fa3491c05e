// Package input is the Linux input ABI shared by the evdev reader and the uinput writer:
// event and key codes, the struct input_event layout of each word size, and ioctl numbers.
package input

import (
	"encoding/binary"
	"unsafe"
)

// Event types and codes (linux/input-event-codes.h).
const (
	EvSyn = 0x00
	EvKey = 0x01

	SynReport  = 0
	SynDropped = 3

	KeyMute         = 113
	KeyVolumeDown   = 114
	KeyVolumeUp     = 115
	KeyCamera       = 212
	KeyMicMute      = 248
	KeyCameraToggle = 0x24b // KEY_CAMERA_ACCESS_TOGGLE, the privacy key of newer laptops
	KeyMax          = 0x2ff
	KeyBitmapBytes  = KeyMax/8 + 1
	BusVirtual      = 0x06
	ValueRelease    = 0
	ValuePress      = 1
	ValueAutorepeat = 2
)

// Event is one struct input_event without its timestamp: readers stamp events with an
// injected clock, and the kernel fills in the time of written ones.
type Event struct {
	Type  uint16
	Code  uint16
	Value int32
}

// WordSize is the size of a C long here: struct input_event starts with a struct timeval of
// two longs (the kernel keeps them longs on 32-bit ARM even for 64-bit time_t userspace).
const WordSize = int(unsafe.Sizeof(uintptr(0)))

// EventSize is the size of struct input_event for a word size: 24 bytes on 64-bit, 16 on
// 32-bit (armv7).
func EventSize(word int) int { return 2*word + 8 }

// Size is struct input_event's size on this architecture.
const Size = 2*WordSize + 8

// Decode reads the event at the start of b, laid out for word size word. Every architecture
// the firmware targets (amd64, arm64, armv7) is little-endian, as is the native order here.
func Decode(b []byte, word int) Event {
	b = b[2*word : 2*word+8]
	return Event{
		Type:  binary.NativeEndian.Uint16(b[0:]),
		Code:  binary.NativeEndian.Uint16(b[2:]),
		Value: int32(binary.NativeEndian.Uint32(b[4:])),
	}
}

// Encode writes ev at the start of b (at least EventSize(word) bytes) with a zero time.
func Encode(b []byte, word int, ev Event) {
	clear(b[:2*word])
	b = b[2*word : 2*word+8]
	binary.NativeEndian.PutUint16(b[0:], ev.Type)
	binary.NativeEndian.PutUint16(b[2:], ev.Code)
	binary.NativeEndian.PutUint32(b[4:], uint32(ev.Value))
}

// ioctl request encoding of asm-generic/ioctl.h, which x86, arm and arm64 share.
const (
	iocWrite = 1
	iocRead  = 2
)

func ioc(dir, typ, nr, size uint) uint { return dir<<30 | size<<16 | typ<<8 | nr }

// EVIOCGNAME, EVIOCGKEY, EVIOCGBIT and EVIOCGRAB (linux/input.h).
func EVIOCGNAME(n int) uint    { return ioc(iocRead, 'E', 0x06, uint(n)) }
func EVIOCGKEY(n int) uint     { return ioc(iocRead, 'E', 0x18, uint(n)) }
func EVIOCGBIT(ev, n int) uint { return ioc(iocRead, 'E', 0x20+uint(ev), uint(n)) }

// EVIOCGRAB takes an int: non-zero grabs the device for this reader alone.
var EVIOCGRAB = ioc(iocWrite, 'E', 0x90, 4)

// UinputSetup is struct uinput_setup (linux/uinput.h): the same 92 bytes on every arch.
type UinputSetup struct {
	Bustype, Vendor, Product, Version uint16
	Name                              [80]byte
	FFEffectsMax                      uint32
}

// uinput ioctls (linux/uinput.h).
var (
	UI_DEV_CREATE  = ioc(0, 'U', 1, 0)
	UI_DEV_DESTROY = ioc(0, 'U', 2, 0)
	UI_DEV_SETUP   = ioc(iocWrite, 'U', 3, uint(unsafe.Sizeof(UinputSetup{})))
	UI_SET_EVBIT   = ioc(iocWrite, 'U', 100, 4)
	UI_SET_KEYBIT  = ioc(iocWrite, 'U', 101, 4)
)
