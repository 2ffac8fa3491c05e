//go:build linux

package vmlab

import (
	"context"
	"io"
	"net"
	"sync"
)

// Relay accepts connections on ln until ctx ends and joins each to a connection dial makes,
// copying both ways until either side closes. It returns when ctx has ended and every
// connection it relayed is closed. The lab uses it to reach a guest daemon's LocalAPI (a
// unix socket) from the host: the guest relays a TCP port qemu forwards to that socket, the
// host relays a socket of its own to the forwarded port, and localapi.Dial works unchanged.
func Relay(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed: ctx ended (or the listener failed, and nothing more can come)
		}
		wg.Go(func() {
			defer c.Close()
			up, err := dial(ctx)
			if err != nil {
				return // the caller's client sees its connection closed
			}
			defer up.Close()
			done := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
			defer done()
			copied := make(chan struct{})
			go func() { io.Copy(up, c); closeWrite(up); close(copied) }() // owned: waited for below
			io.Copy(c, up)
			closeWrite(c)
			<-copied
		})
	}
}

// closeWrite half-closes c where it can, so the far side sees the end of what was sent.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
