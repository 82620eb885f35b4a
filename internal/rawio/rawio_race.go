//go:build linux && race

package rawio

import "syscall"

// Race builds read and write through the syscall package, whose calls tell the race detector
// what they touch and order a write before the read of its bytes; raw calls would hide both
// (rawio_raw.go). Everything else of Socket is the same in both builds.

func sysRead(fd uintptr, p []byte) (int, syscall.Errno)  { return errnoOf(syscall.Read(int(fd), p)) }
func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) { return errnoOf(syscall.Write(int(fd), p)) }

func errnoOf(n int, err error) (int, syscall.Errno) {
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
