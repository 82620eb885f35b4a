package evloop

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestEventsAreEpollBits keeps the portable Events values those of Linux's epoll, which the
// loop hands to a Handler as they come.
func TestEventsAreEpollBits(t *testing.T) {
	if Readable != unix.EPOLLIN || Writable != unix.EPOLLOUT || Hangup != unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR {
		t.Fatalf("Events %#x %#x %#x are not epoll's", Readable, Writable, Hangup)
	}
}
