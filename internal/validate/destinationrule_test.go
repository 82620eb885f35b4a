package validate

import (
	"strings"
	"testing"
)

// drCase is a DestinationRule row: spec is YAML under spec:, host a.example.com added when absent.
func drCases(rows []ruleCase) []ruleCase {
	for i := range rows {
		rows[i].kind = "DestinationRule"
		if !strings.HasPrefix(rows[i].spec, "host:") {
			rows[i].spec = "host: a.example.com\n" + rows[i].spec
		}
	}
	return rows
}

func TestDestinationRuleTLS(t *testing.T) {
	runRules(t, drCases([]ruleCase{
		{name: "accepts MUTUAL with a client certificate and key", spec: "trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}}"},
		{name: "accepts MUTUAL with only a credentialName", spec: "trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-cred}}"},
		{name: "accepts SIMPLE with a CA, SNI and subjectAltNames", spec: "trafficPolicy: {tls: {mode: SIMPLE, caCertificates: /ca.pem, sni: a.example.com, subjectAltNames: [a.example.com]}}"},
		{name: "accepts ISTIO_MUTUAL with subjectAltNames", spec: "trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: ['spiffe://cluster.local/ns/a/sa/b']}}"},
		{
			name: "rejects MUTUAL without a client certificate or key",
			spec: "trafficPolicy: {tls: {mode: MUTUAL, caCertificates: /ca.pem}}",
			want: []finding{e(CodeClientTLS, "spec.trafficPolicy.tls.clientCertificate"), e(CodeClientTLS, "spec.trafficPolicy.tls.privateKey")},
		},
		{
			name: "rejects credentialName together with certificate files",
			spec: "trafficPolicy: {tls: {mode: SIMPLE, credentialName: cred, caCertificates: /ca.pem}}",
			want: []finding{e(CodeClientTLS, "spec.trafficPolicy.tls.credentialName")},
		},
		{
			name: "rejects insecureSkipVerify with SIMPLE and a CA to verify against",
			spec: "trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}",
			want: []finding{e(CodeClientTLS, "spec.trafficPolicy.tls.insecureSkipVerify")},
		},
		{
			name: "rejects insecureSkipVerify with MUTUAL and subjectAltNames",
			spec: "trafficPolicy: {tls: {mode: MUTUAL, insecureSkipVerify: true, clientCertificate: /c.pem, privateKey: /k.pem, subjectAltNames: [x]}}",
			want: []finding{e(CodeClientTLS, "spec.trafficPolicy.tls.insecureSkipVerify")},
		},
		{
			name: "warns that SIMPLE ignores a client certificate",
			spec: "trafficPolicy: {tls: {mode: SIMPLE, clientCertificate: /c.pem, privateKey: /k.pem}}",
			want: []finding{w(CodeClientTLSIgnored, "spec.trafficPolicy.tls.mode")},
		},
		{
			name: "warns that ISTIO_MUTUAL ignores certificate files",
			spec: "trafficPolicy: {tls: {mode: ISTIO_MUTUAL, clientCertificate: /c.pem}}",
			want: []finding{w(CodeClientTLSIgnored, "spec.trafficPolicy.tls.mode")},
		},
		{
			name: "warns that DISABLE ignores sni",
			spec: "trafficPolicy: {tls: {sni: a.example.com}}",
			want: []finding{w(CodeClientTLSIgnored, "spec.trafficPolicy.tls.mode")},
		},
		{
			name: "checks tls in port levels and subsets too",
			spec: "trafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, privateKey: /k.pem}}]}\nsubsets: [{name: v1, trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem}}}]",
			want: []finding{
				e(CodeClientTLS, "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate"),
				e(CodeClientTLS, "spec.subsets[0].trafficPolicy.tls.privateKey"),
			},
		},
	}))
}

func TestDestinationRuleLoadBalancer(t *testing.T) {
	runRules(t, drCases([]ruleCase{
		{name: "accepts a simple load balancer", spec: "trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}"},
		{name: "accepts a consistent hash on a cookie with a ttl", spec: "trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}}}}"},
		{name: "accepts maglev with a prime table size", spec: "trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}}}"},
		{
			name: "rejects a cookie without a name but, as Istio, not one without a ttl",
			spec: "trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {path: /}}}}",
			want: []finding{e(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name")},
		},
		{
			name: "rejects cookie attributes without a name or listed twice",
			spec: "trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: u, attributes: [{name: SameSite, value: Lax}, {name: SameSite}, {value: x}]}}}}",
			want: []finding{e(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[1].name"), e(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[2].name")},
		},
		{
			name: "rejects a warmup without a duration and with a bad aggression",
			spec: "trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmup: {aggression: 0}}}",
			want: []finding{e(CodeLoadBalancer, "spec.trafficPolicy.loadBalancer.warmup.duration"), e(CodeLoadBalancer, "spec.trafficPolicy.loadBalancer.warmup.aggression")},
		},
		{
			name: "rejects localityLbSetting together with zoneAwareLbSetting",
			spec: "trafficPolicy: {loadBalancer: {localityLbSetting: {enabled: true}, zoneAwareLbSetting: {enabled: true}}}",
			want: []finding{e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting")},
		},
		{
			name: "rejects a maglev table size that is not prime",
			spec: "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}",
			want: []finding{e(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize")},
		},
		{
			name: "rejects the deprecated minimumRingSize with a ring hash, and warns of it",
			spec: "trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {minimumRingSize: 1024}}}}",
			want: []finding{w(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize"), e(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize")},
		},
		{
			name: "warns about a consistent hash without a key",
			spec: "trafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}}",
			want: []finding{w(CodeConsistentHash, "spec.trafficPolicy.loadBalancer.consistentHash")},
		},
		{
			name: "accepts distribute weights summing to 100",
			spec: "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/zone1/*, to: {us-west/zone1/*: 80, us-west/zone2/*: 20}}]}}}",
		},
		{
			name: "rejects distribute weights that do not sum to 100",
			spec: "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/*, to: {us-west/zone1: 50, us-east: 40}}]}}}",
			want: []finding{e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to")},
		},
		{
			name: "rejects overlapping from localities and a misplaced wildcard",
			spec: "trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us-west/*, to: {a: 100}}, {from: us-west/zone1, to: {b: 100}}]}}}",
			want: []finding{e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute")},
		},
		{
			name: "rejects distribute together with failover",
			spec: "trafficPolicy: {outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {distribute: [{from: a, to: {b: 100}}], failover: [{from: a, to: b}]}}}",
			want: []finding{e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting")},
		},
		{
			name: "rejects failover to the same region, or to a zone",
			spec: "trafficPolicy: {outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-east}, {from: us-east, to: us-west/zone1}]}}}",
			want: []finding{e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]"), e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[1]")},
		},
		{
			name: "warns about failover without outlier detection",
			spec: "trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-west}]}}}",
			want: []finding{w(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting")},
		},
		{
			name: "rejects failover with a topology label in failoverPriority",
			spec: "trafficPolicy: {outlierDetection: {interval: 1s}, loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: us-west}], failoverPriority: [topology.kubernetes.io/zone]}}}",
			want: []finding{e(CodeLocalityLB, "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[0]")},
		},
	}))
}

func TestDestinationRuleLimitsAndOutliers(t *testing.T) {
	runRules(t, drCases([]ruleCase{
		{name: "accepts a full connection pool", spec: "trafficPolicy: {connectionPool: {tcp: {maxConnections: 2, connectTimeout: 250ms, tcpKeepalive: {time: 10s, interval: 5s}}, http: {http1MaxPendingRequests: 1, maxRetries: 0, idleTimeout: 1m}}}"},
		{name: "accepts outlier detection with whole-millisecond durations", spec: "trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3, interval: 1.5s, baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 0}}"},
		{
			name: "rejects an empty traffic policy and an empty connection pool",
			spec: "trafficPolicy: {}\nsubsets: [{name: v1, trafficPolicy: {connectionPool: {}}}]",
			want: []finding{e(CodeTrafficPolicyEmpty, "spec.trafficPolicy"), e(CodeConnectionPool, "spec.subsets[0].trafficPolicy.connectionPool")},
		},
		{
			name: "rejects negative limits",
			spec: "trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}, http: {http2MaxRequests: -5}}}",
			want: []finding{e(CodeConnectionPool, "spec.trafficPolicy.connectionPool.tcp.maxConnections"), e(CodeConnectionPool, "spec.trafficPolicy.connectionPool.http.http2MaxRequests")},
		},
		{
			name: "rejects negative and sub-millisecond durations",
			spec: "trafficPolicy: {connectionPool: {tcp: {connectTimeout: -1s}, http: {idleTimeout: 500us}}, outlierDetection: {baseEjectionTime: -30s, interval: 1.0005s}}",
			want: []finding{
				e(CodeConnectionPool, "spec.trafficPolicy.connectionPool.tcp.connectTimeout"),
				e(CodeConnectionPool, "spec.trafficPolicy.connectionPool.http.idleTimeout"),
				e(CodeOutlierDetection, "spec.trafficPolicy.outlierDetection.baseEjectionTime"),
				e(CodeOutlierDetection, "spec.trafficPolicy.outlierDetection.interval"),
			},
		},
		{
			name: "rejects percentages outside 0..100",
			spec: "trafficPolicy: {outlierDetection: {maxEjectionPercent: 101, minHealthPercent: -1}}",
			want: []finding{e(CodeOutlierDetection, "spec.trafficPolicy.outlierDetection.maxEjectionPercent"), e(CodeOutlierDetection, "spec.trafficPolicy.outlierDetection.minHealthPercent")},
		},
		{
			name: "rejects local origin failures without splitting them out, and warns of consecutiveErrors",
			spec: "trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 5, consecutiveErrors: 5}}",
			want: []finding{e(CodeOutlierDetection, "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures"), w(CodeOutlierDetection, "spec.trafficPolicy.outlierDetection.consecutiveErrors")},
		},
		{
			name: "accepts a tcp idleTimeout of 0s, which turns it off",
			spec: "trafficPolicy: {connectionPool: {tcp: {idleTimeout: 0s}}}",
		},
		{
			name: "rejects an http2KeepAlive without a timeout",
			spec: "trafficPolicy: {connectionPool: {http: {http2KeepAlive: {interval: 10s}}}}",
			want: []finding{e(CodeConnectionPool, "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout")},
		},
		{
			name: "rejects a tunnel with another protocol and no target",
			spec: "trafficPolicy: {tunnel: {protocol: GET}}",
			want: []finding{
				e(CodeTrafficPolicyEmpty, "spec.trafficPolicy.tunnel.protocol"),
				e(CodeTrafficPolicyEmpty, "spec.trafficPolicy.tunnel.targetHost"),
				e(CodeTrafficPolicyEmpty, "spec.trafficPolicy.tunnel.targetPort"),
			},
		},
		{name: "accepts a tunnel through a proxy", spec: "trafficPolicy: {tunnel: {protocol: CONNECT, targetHost: egress.example.com, targetPort: 8443}}"},
		{
			name: "rejects h2 upgrade with useClientProtocol",
			spec: "trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}",
			want: []finding{e(CodeConnectionPool, "spec.trafficPolicy.connectionPool.http.useClientProtocol")},
		},
	}))
}

func TestDestinationRulePortLevelsSubsetsAndSelector(t *testing.T) {
	runRules(t, drCases([]ruleCase{
		{name: "accepts port-level settings for two ports", spec: "trafficPolicy: {portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}, {port: {number: 443}, tls: {mode: SIMPLE}}]}"},
		{
			name: "rejects a port level without a port, with port 0, or with nothing set",
			spec: "trafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}, {port: {number: 0}, tls: {mode: SIMPLE}}, {port: {number: 80}}]}",
			want: []finding{
				e(CodePortLevelSettings, "spec.trafficPolicy.portLevelSettings[0].port"),
				e(CodePortLevelSettings, "spec.trafficPolicy.portLevelSettings[1].port.number"),
				e(CodePortLevelSettings, "spec.trafficPolicy.portLevelSettings[2]"),
			},
		},
		{
			name: "warns about a port listed twice, whose second settings are dead",
			spec: "trafficPolicy: {portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE}}, {port: {number: 80}, tls: {mode: DISABLE}}]}",
			want: []finding{w(CodePortLevelSettings, "spec.trafficPolicy.portLevelSettings[1].port.number")},
		},
		{
			name: "rejects subset labels that are not Kubernetes labels",
			spec: "subsets: [{name: v1, labels: {'bad key!': v1, version: 'not ok!'}}]",
			want: []finding{e(CodeLabelKeyInvalid, "spec.subsets[0].labels.bad key!"), e(CodeLabelValueInvalid, "spec.subsets[0].labels.version")},
		},
		{name: "accepts a workloadSelector", spec: "workloadSelector: {matchLabels: {app: web}}"},
		{
			name: "rejects a wildcard in a workloadSelector",
			spec: "workloadSelector: {matchLabels: {app: '*'}}",
			want: []finding{e(CodeSelectorWildcard, "spec.workloadSelector.matchLabels.app")},
		},
		{name: "accepts a workloadSelector rule exported to its own namespace", spec: "workloadSelector: {matchLabels: {app: web}}\nexportTo: [.]"},
		{
			name: "rejects a workloadSelector rule exported to another namespace",
			spec: "workloadSelector: {matchLabels: {app: web}}\nexportTo: [other]",
			want: []finding{e(CodeSelectorExportTo, "spec.exportTo")},
		},
		{
			name: "rejects a workloadSelector rule exported to its namespace and another",
			spec: "workloadSelector: {matchLabels: {app: web}}\nexportTo: [., other]",
			want: []finding{e(CodeSelectorExportTo, "spec.exportTo")},
		},
		{
			name: "warns about a workloadSelector without labels",
			spec: "workloadSelector: {}",
			want: []finding{w(CodeSelectorNoLabels, "spec.workloadSelector")},
		},
	}))
}

func TestDestinationRuleFindingsPointAtTheirLine(t *testing.T) {
	t.Parallel()
	d := decodeDoc(t, "DestinationRule", "", "", "host: a.example.com\ntrafficPolicy:\n  outlierDetection:\n    interval: 1s\n    maxEjectionPercent: 150\n")
	ds := Document(d)
	if len(ds) != 1 {
		t.Fatalf("findings = %v, want one", messages(ds))
	}
	// The header is 5 lines and spec: the 6th; maxEjectionPercent is the 5th line under spec.
	if ds[0].Line != 11 {
		t.Errorf("line = %d, want 11 (maxEjectionPercent): %s", ds[0].Line, ds[0])
	}
}
