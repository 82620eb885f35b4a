// Command scaletool is what bench/scale.sh measures the control plane with: it generates N
// ServiceEntries spread over files, and times `meshentry run` from start to ready and a reload
// from the write of one file to the new entry serving traffic.
package main

import (
	"fmt"
	"os"
)

func main() {
	const usage = "usage: scaletool gen -n N -files F -dir DIR | serve -dir DIR -backend ADDR [-reloads R] -- MESHENTRY ARGS..."
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = genCmd(os.Args[2:])
	case "serve":
		err = serveCmd(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaletool:", err)
		os.Exit(1)
	}
}
