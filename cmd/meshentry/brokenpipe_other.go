//go:build !unix

package main

// surviveBrokenPipes has nothing to do where there is no SIGPIPE.
func surviveBrokenPipes() {}
