// Package balance chooses an endpoint for one service port: it keeps traffic in the proxy's own
// locality (and network) while that has healthy endpoints, splits it by weight there, and ejects
// endpoints that keep failing.
//
// Istio applies locality failover only when a DestinationRule configures outlier detection; meshentry
// applies it always, because a standalone proxy has no other place to ask for it and staying close is
// the behaviour users expect from a locality label.
package balance
