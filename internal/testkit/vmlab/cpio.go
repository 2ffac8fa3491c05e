package vmlab

import (
	"bufio"
	"fmt"
	"io"
)

// cpioWriter writes the "newc" cpio format (magic 070701) that the kernel unpacks as an
// initramfs. The format is a 110-byte ASCII header of hex fields, the NUL-terminated name and
// the data, each padded to 4 bytes, ended by an entry named TRAILER!!!. Written here rather
// than taken from a module because that is all there is to it and only writing is needed.
type cpioWriter struct {
	w   *bufio.Writer
	ino int
	err error
}

func newCPIOWriter(w io.Writer) *cpioWriter { return &cpioWriter{w: bufio.NewWriter(w)} }

// File modes of the entries (the S_IF* bits of stat(2)).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
)

// entry writes one member: name without a leading slash, mode with its type bits, and the
// body (a file's contents, a symlink's target, nothing for a directory). Errors stick, as
// in bufio: the first is returned by every later call and by close.
func (c *cpioWriter) entry(name string, mode uint32, body []byte) error {
	if c.err != nil {
		return c.err
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	// magic ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
	_, c.err = fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	if c.err == nil {
		_, c.err = c.w.WriteString(name + "\x00")
	}
	c.pad(110 + len(name) + 1)
	if c.err == nil {
		_, c.err = c.w.Write(body)
	}
	c.pad(len(body))
	return c.err
}

// pad writes the NULs that bring n bytes up to a multiple of 4.
func (c *cpioWriter) pad(n int) {
	if c.err == nil && n%4 != 0 {
		_, c.err = c.w.Write(make([]byte, 4-n%4))
	}
}

// close writes the trailer and flushes; it does not close the underlying writer.
func (c *cpioWriter) close() error {
	if c.entry("TRAILER!!!", 0, nil) != nil {
		return c.err
	}
	return c.w.Flush()
}
