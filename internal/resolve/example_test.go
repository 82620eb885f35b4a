package resolve_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/meshentry/meshentry/internal/resolve"
)

// A DNS_ROUND_ROBIN service takes the next address of its name for each new connection.
func ExampleRoundRobin() {
	var rr resolve.RoundRobin
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	for range 3 {
		fmt.Println(rr.Next(addrs))
	}
	// Output:
	// 10.0.0.1
	// 10.0.0.2
	// 10.0.0.1
}

// An endpoint given as an IP literal needs no DNS at all.
func ExampleResolver_Lookup() {
	r, err := resolve.New(resolve.Config{Server: "127.0.0.1:53"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	addrs, err := r.Lookup(context.Background(), "192.0.2.10")
	fmt.Println(addrs, err)
	// Output: [192.0.2.10] <nil>
}
