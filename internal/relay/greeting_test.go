package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

const testGreeting = "HTTP/1.1 200 Connection established\r\n\r\n"

// greetedPipe relays between two fresh TCP pairs with testGreeting, returning the application's
// end, the server's end and Pipe's result.
func greetedPipe(t *testing.T) (client, backend net.Conn, done <-chan result) {
	t.Helper()
	a, client := tcpPair(t)
	b, backend := tcpPair(t)
	ch := make(chan result, 1)
	go func() {
		var r result
		r.up, r.down, r.err = Pipe(context.Background(), a, b, Options{IdleTimeout: 10 * time.Second, Greeting: []byte(testGreeting)})
		ch <- r
	}()
	return client, backend, ch
}

func waitResult(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return")
		return result{}
	}
}

func TestGreetingComesFirst(t *testing.T) {
	t.Parallel()
	// Bursts of every size class: a few bytes, one buffer, several buffers (spliced), and back.
	var bulk []byte
	for i, n := range []int{1, 300, bufSize, 5, 3*bufSize + 17, 7, 100 << 10, 2} {
		bulk = append(bulk, bytes.Repeat([]byte{byte('a' + i)}, n)...)
	}
	tests := []struct {
		name string
		// sent is what the server writes as soon as it is connected, before it closes.
		sent []byte
	}{
		{name: "sends the greeting before the bytes a server-first upstream sent at once", sent: []byte("220 banner\r\n")},
		{name: "sends the greeting before the end of an upstream that closes at once"},
		{name: "sends the greeting before a stream mixing small bursts and bulk, byte for byte", sent: bulk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, backend, done := greetedPipe(t)
			go func() {
				backend.Write(tc.sent)
				backend.Close()
			}()
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(client)
			if err != nil {
				t.Fatalf("client read: %v", err)
			}
			want := append([]byte(testGreeting), tc.sent...)
			if !bytes.Equal(got, want) {
				t.Fatalf("client got %d bytes (%.60q), want %d (%.60q)", len(got), got, len(want), want)
			}
			client.Close()
			if r := waitResult(t, done); r.err != nil || r.down != int64(len(tc.sent)) {
				t.Fatalf("Pipe = down %d, %v; want down %d (the greeting not counted), nil", r.down, r.err, len(tc.sent))
			}
		})
	}
}

func TestGreetingGoesOutAloneWhileTheUpstreamWaits(t *testing.T) {
	t.Parallel()
	client, backend, done := greetedPipe(t)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, len(testGreeting))
	if _, err := io.ReadFull(client, head); err != nil || string(head) != testGreeting {
		t.Fatalf("client read %q, %v before sending anything; want the greeting", head, err)
	}
	client.Write([]byte("ClientHello"))
	backend.SetReadDeadline(time.Now().Add(5 * time.Second))
	hello := make([]byte, len("ClientHello"))
	if _, err := io.ReadFull(backend, hello); err != nil || string(hello) != "ClientHello" {
		t.Fatalf("backend read %q, %v", hello, err)
	}
	backend.Write([]byte("ServerHello"))
	backend.Close()
	rest, err := io.ReadAll(client)
	if err != nil || string(rest) != "ServerHello" {
		t.Fatalf("client then read %q, %v; want ServerHello and the end", rest, err)
	}
	client.Close()
	if r := waitResult(t, done); r.err != nil || r.up != 11 || r.down != 11 {
		t.Fatalf("Pipe = up %d down %d, %v; want 11, 11, nil", r.up, r.down, r.err)
	}
}

func TestGreetingToAClientThatLeftIsErrGreeting(t *testing.T) {
	t.Parallel()
	a, client := memPair(t)
	b, _ := tcpPair(t)
	client.Close() // a write to a gets io.ErrClosedPipe at once
	_, _, err := Pipe(context.Background(), a, b, Options{Greeting: []byte(testGreeting)})
	if !errors.Is(err, ErrGreeting) {
		t.Fatalf("Pipe err = %v, want ErrGreeting", err)
	}
}
