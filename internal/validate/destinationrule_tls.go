package validate

import (
	networking "istio.io/api/networking/v1alpha3"
)

// clientTLS is Istio's ValidateTLS for upstream TLS settings, plus warnings (meshentry only) for
// fields the chosen mode ignores, which Istio drops without a word.
func clientTLS(r *report, f string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	mode := t.Mode
	skip := t.GetInsecureSkipVerify().GetValue()
	switch {
	case skip && mode == networking.ClientTLSSettings_SIMPLE && (t.CaCertificates != "" || t.CredentialName != "" || t.SubjectAltNames != nil):
		r.errorf(CodeClientTLS, f+".insecureSkipVerify", "caCertificates, credentialName and subjectAltNames cannot be set when insecureSkipVerify is true: nothing would check them")
	case skip && mode == networking.ClientTLSSettings_MUTUAL && (t.CaCertificates != "" || t.SubjectAltNames != nil):
		r.errorf(CodeClientTLS, f+".insecureSkipVerify", "caCertificates and subjectAltNames cannot be set when insecureSkipVerify is true: nothing would check them")
	}
	fileFields := t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CaCrl != ""
	switch mode {
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		if t.CredentialName != "" {
			if fileFields {
				r.errorf(CodeClientTLS, f+".credentialName", "clientCertificate, privateKey, caCertificates and caCrl cannot be set with credentialName, which supplies them")
			}
			return
		}
	}
	switch mode {
	case networking.ClientTLSSettings_MUTUAL:
		if t.ClientCertificate == "" {
			r.errorf(CodeClientTLS, f+".clientCertificate", "mode MUTUAL needs clientCertificate (or credentialName)")
		}
		if t.PrivateKey == "" {
			r.errorf(CodeClientTLS, f+".privateKey", "mode MUTUAL needs privateKey (or credentialName)")
		}
	case networking.ClientTLSSettings_SIMPLE:
		if t.ClientCertificate != "" || t.PrivateKey != "" {
			r.warnf(CodeClientTLSIgnored, f+".mode", "mode SIMPLE presents no client certificate, so clientCertificate and privateKey are ignored; use MUTUAL to send them")
		}
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		if fileFields || t.CredentialName != "" {
			r.warnf(CodeClientTLSIgnored, f+".mode", "mode ISTIO_MUTUAL uses the proxy's own identity and trust bundle, so clientCertificate, privateKey, caCertificates, caCrl and credentialName are ignored; use MUTUAL to set them")
		}
	case networking.ClientTLSSettings_DISABLE:
		if fileFields || t.CredentialName != "" || t.Sni != "" || t.SubjectAltNames != nil {
			r.warnf(CodeClientTLSIgnored, f+".mode", "mode DISABLE (the default) opens no TLS, so the other tls fields are ignored; set mode SIMPLE or MUTUAL to use them")
		}
	}
	for i, san := range t.SubjectAltNames {
		if san == "" {
			r.warnf(CodeSubjectAltEmpty, at(f+".subjectAltNames", i, ""), "an empty subjectAltNames entry matches no certificate")
		}
	}
}
