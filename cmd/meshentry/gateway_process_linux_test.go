package main

import "testing"

// TestEgressGatewayExample04BetweenProcesses is example 04 with the sidecars and the gateway
// each a process of its own, the built binary, as separate pods would run them.
func TestEgressGatewayExample04BetweenProcesses(t *testing.T) {
	t.Parallel()
	egressExample04(t, startProcArgs)
}

// TestEgressGatewayWithTLSOriginationBetweenProcesses is the TLS origination task between
// processes: the mutual TLS hop crosses from one process to another.
func TestEgressGatewayWithTLSOriginationBetweenProcesses(t *testing.T) {
	t.Parallel()
	egressTLSOrigination(t, startProcArgs)
}
