package envoy

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	http "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/registry"
)

// transportSocket is the DestinationRule's client TLS as Envoy's UpstreamTlsContext: files for
// SIMPLE and MUTUAL (credentialName is not read: there is no Kubernetes secret store), Istio's
// SDS names "default" and "ROOTCA" for ISTIO_MUTUAL.
func transportSocket(t *networking.ClientTLSSettings, svc *registry.Service, n Node) *core.TransportSocket {
	if t == nil || t.Mode == networking.ClientTLSSettings_DISABLE {
		return nil
	}
	common := &tlsv3.CommonTlsContext{}
	sni := t.GetSni()
	switch t.Mode {
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{{Name: "default", SdsConfig: adsSource()}}
		common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans(svc.SubjectAltNames, t.SubjectAltNames)},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA", SdsConfig: adsSource()},
			}}
		common.AlpnProtocols = []string{"istio-peer-exchange", "istio"}
	default:
		if t.Mode == networking.ClientTLSSettings_MUTUAL && t.ClientCertificate != "" {
			common.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: file(t.ClientCertificate),
				PrivateKey:       file(t.PrivateKey),
			}}
		}
		vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans(t.SubjectAltNames, nil)}
		if t.CaCertificates != "" {
			vc.TrustedCa = file(t.CaCertificates)
		}
		if t.CaCertificates != "" || len(vc.MatchTypedSubjectAltNames) > 0 {
			common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: common, Sni: sni}
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

func sans(a, b []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, list := range [][]string{a, b} {
		for _, s := range list {
			typ := tlsv3.SubjectAltNameMatcher_DNS
			if len(s) > 8 && s[:8] == "spiffe:/" {
				typ = tlsv3.SubjectAltNameMatcher_URI
			}
			out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: typ,
				Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}})
		}
	}
	return out
}

func file(path string) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_Filename{Filename: path}}
}

// http2Options makes Envoy speak HTTP/2 upstream, as Istio does for HTTP2 and GRPC ports.
func http2Options() map[string]*anypb.Any {
	opts := &http.HttpProtocolOptions{UpstreamProtocolOptions: &http.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &http.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &http.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
		}}}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(opts)}
}

// mustAny packs a message; anypb.New fails only for a nil or unregistered message, which the
// translator never builds.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("envoy: pack " + string(proto.MessageName(m)) + ": " + err.Error())
	}
	return a
}
