// linkdump: dump the links of the current netns with the Go netlink library
// (github.com/vishvananda/netlink, as Kubernetes' CNI plugins use it), over and
// over, and say how many dumps the kernel marked interrupted.
//
// Debian's package predates the library's EINTR on NLM_F_DUMP_INTR (#925), so
// LinkList itself never fails here: each dump is made with the library's own
// request and socket code, and its parts' flags are read, as #925 does.
//
//	linkdump -n N [-until K] [-every D]
//
// -until K: stop once K dumps were interrupted (at most N dumps all the same).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 100, "dumps to make")
	every := flag.Duration("every", 0, "pause between dumps")
	until := flag.Int("until", 0, "stop after this many interrupted dumps (0: make all N)")
	flag.Parse()
	intr, fails, made := 0, 0, 0
	for i := 0; i < *n && (*until == 0 || intr < *until); i++ {
		made++
		// what LinkList sends: RTM_GETLINK with NLM_F_DUMP, an ifinfomsg and IFLA_EXT_MASK
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_EXT_MASK, nl.Uint32Attr(nl.RTEXT_FILTER_VF)))
		s, err := nl.Subscribe(unix.NETLINK_ROUTE)
		if err != nil {
			fmt.Fprintln(os.Stderr, "linkdump:", err)
			os.Exit(1)
		}
		if err := s.Send(req); err != nil {
			fmt.Fprintln(os.Stderr, "linkdump:", err)
			os.Exit(1)
		}
		interrupted := false
	read:
		for {
			msgs, _, err := s.Receive()
			if err != nil {
				fails++
				break
			}
			for _, m := range msgs {
				if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
					interrupted = true
				}
				if m.Header.Type == unix.NLMSG_DONE || m.Header.Type == unix.NLMSG_ERROR {
					break read
				}
			}
		}
		s.Close()
		if interrupted {
			intr++
		}
		// and the library's own call, as a program makes it
		if _, err := netlink.LinkList(); err != nil {
			fails++
		}
		if *every > 0 {
			time.Sleep(*every)
		}
	}
	fmt.Printf("dumps=%d interrupted=%d failed=%d\n", made, intr, fails)
}
