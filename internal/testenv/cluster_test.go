package testenv

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrIsOutsideTheEphemeralPorts: the port can be listened on, and no connection
// the kernel numbers from its ephemeral range can take it before then.
func TestFreeAddrIsOutsideTheEphemeralPorts(t *testing.T) {
	lowest := ephemeralPortsFrom()
	for range 20 {
		addr := FreeAddr(t)
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(port)
		if n < freePortsFrom || n >= lowest {
			t.Errorf("port %d, want one in [%d, %d)", n, freePortsFrom, lowest)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening on %s: %v", addr, err)
		}
		_ = l.Close()
	}
}
