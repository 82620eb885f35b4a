// Package balance chooses an endpoint for one service port: it ranks endpoints by locality (and
// network), chooses within the best priority that has healthy endpoints by the DestinationRule's
// algorithm (weighted random without one), and ejects endpoints that keep failing.
//
// Without a DestinationRule meshentry applies locality failover always, because a standalone proxy
// has no other place to ask for it and staying close is the behaviour users expect from a locality
// label. With one, FromTrafficPolicy follows Istio: failover only with outlierDetection, distribute
// by itself, nothing with enabled: false.
package balance
