package admin

import (
	"fmt"
	"net/http"
	"net/netip"
)

// ListenersJSON is /listeners?format=json, in the shape of Envoy's admin.v3.Listeners.
type ListenersJSON struct {
	ListenerStatuses []ListenerStatusJSON `json:"listener_statuses"`
}

// ListenerStatusJSON is one listener: its name and bound address.
type ListenerStatusJSON struct {
	Name         string      `json:"name"`
	LocalAddress AddressJSON `json:"local_address"`
}

func (a *api) listeners(w http.ResponseWriter, r *http.Request) {
	ls := a.listenerList()
	if wantsJSON(r) {
		out := ListenersJSON{ListenerStatuses: []ListenerStatusJSON{}}
		for _, l := range ls {
			st := ListenerStatusJSON{Name: l.Name}
			if ap, err := netip.ParseAddrPort(l.Address); err == nil {
				st.LocalAddress.SocketAddress = &SocketAddressJSON{Address: ap.Addr().String(), PortValue: uint32(ap.Port())}
			}
			out.ListenerStatuses = append(out.ListenerStatuses, st)
		}
		writeJSON(w, out)
		return
	}
	// Envoy's text form: "name::address", one listener a line.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, l := range ls {
		fmt.Fprintf(w, "%s::%s\n", l.Name, l.Address)
	}
}
