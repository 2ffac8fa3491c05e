package netlab

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DelayQueue bounds how many packets a DelayConn holds in each direction; further packets are
// dropped, as a router with a full queue would.
const DelayQueue = 1024

// DelayConn wraps a net.PacketConn so that every packet written is sent Delay later and every
// packet received is returned Delay after it arrived; a round trip through it takes at least
// 2×Delay longer. Order is kept. Two goroutines it owns (a reader and a writer) run until
// Close, which waits for them. Safe for concurrent use like any PacketConn.
type DelayConn struct {
	net.PacketConn

	delay atomic.Int64 // nanoseconds

	out chan packet // written, waiting to be sent
	in  chan packet // received, waiting to be read

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	readMu       sync.Mutex // one ReadFrom at a time
	deadlineMu   sync.Mutex
	readDeadline time.Time
	deadlineCh   chan struct{} // replaced (closed) when the read deadline changes

	pending *packet // received, taken from in, not yet due; guarded by readMu
	readErr error   // the underlying read error that ended the reader, valid once in is closed
	dropped atomic.Int64
	relayed atomic.Int64
}

type packet struct {
	data []byte
	addr net.Addr
	due  time.Time
}

// NewDelayConn starts delaying pc's traffic by d (0 passes packets straight through, still
// in order). The DelayConn owns pc: Close closes it.
func NewDelayConn(pc net.PacketConn, d time.Duration) *DelayConn {
	c := &DelayConn{
		PacketConn: pc,
		out:        make(chan packet, DelayQueue),
		in:         make(chan packet, DelayQueue),
		done:       make(chan struct{}),
		deadlineCh: make(chan struct{}),
	}
	c.delay.Store(int64(d))
	c.wg.Add(2)
	go c.reader()
	go c.writer()
	return c
}

// SetDelay changes the delay for packets from now on (packets already held keep their time).
func (c *DelayConn) SetDelay(d time.Duration) { c.delay.Store(int64(d)) }

// Delay returns the current delay.
func (c *DelayConn) Delay() time.Duration { return time.Duration(c.delay.Load()) }

// Stats returns how many packets went through (both directions) and how many were dropped
// because a queue was full.
func (c *DelayConn) Stats() (relayed, dropped int64) { return c.relayed.Load(), c.dropped.Load() }

// WriteTo queues p for sending to addr after the delay. It never blocks; when the queue is
// full the packet is dropped (and reported as written, as UDP would).
func (c *DelayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	pkt := packet{data: append([]byte(nil), p...), addr: addr, due: time.Now().Add(c.Delay())}
	select {
	case c.out <- pkt:
	default:
		c.dropped.Add(1)
	}
	return len(p), nil
}

// ReadFrom returns the next received packet once its delay has passed. It honours the read
// deadline (SetReadDeadline / SetDeadline); a packet not yet due when the deadline passes is
// kept for the next ReadFrom.
func (c *DelayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		deadline, changed := c.deadline()
		dl, expired := deadlineTimer(deadline)
		if expired {
			return 0, nil, os.ErrDeadlineExceeded
		}
		var due *time.Timer
		if c.pending != nil {
			wait := time.Until(c.pending.due)
			if wait <= 0 {
				stopTimer(dl)
				pkt := c.pending
				c.pending = nil
				c.relayed.Add(1)
				return copy(p, pkt.data), pkt.addr, nil
			}
			due = time.NewTimer(wait)
		}
		var err error
		select {
		case q, ok := <-c.recvC():
			if ok {
				c.pending = &q
			} else if c.readErr != nil && !isClosed(c.done) {
				err = c.readErr
			} else {
				err = net.ErrClosed
			}
		case <-timerC(due):
		case <-changed:
		case <-timerC(dl):
			err = os.ErrDeadlineExceeded
		case <-c.done:
			err = net.ErrClosed
		}
		stopTimer(due)
		stopTimer(dl)
		if err != nil {
			return 0, nil, err
		}
	}
}

// recvC is the in queue while no packet is pending, else nil (take one packet at a time).
func (c *DelayConn) recvC() <-chan packet {
	if c.pending != nil {
		return nil
	}
	return c.in
}

// SetReadDeadline sets the deadline for ReadFrom.
func (c *DelayConn) SetReadDeadline(t time.Time) error {
	c.deadlineMu.Lock()
	c.readDeadline = t
	close(c.deadlineCh)
	c.deadlineCh = make(chan struct{})
	c.deadlineMu.Unlock()
	return nil
}

// SetDeadline sets the read deadline and the underlying connection's write deadline (writes
// are queued and never block anyway).
func (c *DelayConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.PacketConn.SetWriteDeadline(t)
}

// Close closes the underlying connection, drops held packets and waits for the goroutines.
func (c *DelayConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.closeErr = c.PacketConn.Close()
		c.wg.Wait()
	})
	return c.closeErr
}

func (c *DelayConn) deadline() (time.Time, <-chan struct{}) {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	return c.readDeadline, c.deadlineCh
}

// reader moves received packets into the in queue, stamped with their due time.
func (c *DelayConn) reader() {
	defer c.wg.Done()
	defer close(c.in)
	buf := make([]byte, 64*1024)
	for {
		n, addr, err := c.PacketConn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !isClosed(c.done) {
				continue // someone set a deadline on the underlying conn; keep reading
			}
			c.readErr = err
			return
		}
		pkt := packet{data: append([]byte(nil), buf[:n]...), addr: addr, due: time.Now().Add(c.Delay())}
		select {
		case c.in <- pkt:
		default:
			c.dropped.Add(1)
		}
	}
}

// writer sends queued packets when they are due.
func (c *DelayConn) writer() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var pkt packet
		select {
		case pkt = <-c.out:
		case <-c.done:
			return
		}
		if wait := time.Until(pkt.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if _, err := c.PacketConn.WriteTo(pkt.data, pkt.addr); err == nil {
			c.relayed.Add(1)
		} else if isClosed(c.done) {
			return
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// deadlineTimer returns a timer firing at t (nil for no deadline) and whether t has passed.
func deadlineTimer(t time.Time) (*time.Timer, bool) {
	if t.IsZero() {
		return nil, false
	}
	d := time.Until(t)
	if d <= 0 {
		return nil, true
	}
	return time.NewTimer(d), false
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
