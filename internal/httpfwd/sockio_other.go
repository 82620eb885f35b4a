//go:build !linux

package httpfwd

// canRawIO is false: sockets are read and written through their connections.
const canRawIO = false

func (s *sockIO) readFD(uintptr) bool  { return true }
func (s *sockIO) writeFD(uintptr) bool { return true }
