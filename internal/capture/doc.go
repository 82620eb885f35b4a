// Package capture builds and applies the iptables nat rules that send an application's outbound TCP
// to meshentry's capture listener and its DNS queries to the DNS proxy, the counterpart of Istio's
// istio-iptables.
//
// The rules are data first: Rules is a pure function from Options to the iptables-restore input for
// IPv4 and IPv6, so a dry run and the golden tests see exactly what Setup applies. Every rule lives
// in chains named MESHENTRY_*, jumped to from the nat OUTPUT chain, so Teardown can find and remove
// exactly what Setup added by reading iptables-save, whoever ran Setup and with which options.
package capture
