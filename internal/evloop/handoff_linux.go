package evloop

import (
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/gopool"
)

// handoff gives the accepted client fd, never registered with this loop's epoll, to serve on a
// pooled goroutine. The conversion (a dup and a netpoller registration) runs there rather
// than here: it is two system calls the loop's other connections need not wait for.
func (l *loop) handoff(fd int32, serve func(net.Conn)) {
	bump(&l.stats.handoffs, 1)
	gopool.Go(func() {
		c, err := fileConn(fd)
		if err != nil {
			return // fileConn closed fd: the client sees a reset, as at an overflow
		}
		serve(c)
	})
}

// fileConn turns a connected socket into a net.Conn and closes fd itself, as net.FileConn
// works on a duplicate.
func fileConn(fd int32) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "evloop-client")
	if f == nil {
		unix.Close(int(fd))
		return nil, os.ErrInvalid
	}
	defer f.Close()
	return net.FileConn(f)
}
