//go:build !linux

package main

import "errors"

func serveEvPipe(addr, upstream string) error {
	return errors.New("evpipe needs Linux's epoll")
}

func serveEvHand(addr, upstream string) error {
	return errors.New("evhand needs Linux's epoll")
}

func serveEvLoop(addr, upstream string) error {
	return errors.New("evloop needs Linux's epoll")
}

func serveEvHTTP(addr, upstream string) error {
	return errors.New("evhttp needs Linux's epoll")
}
