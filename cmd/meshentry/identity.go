package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/identity"
)

// identityFlags name the directory holding the proxy's workload identity, for ISTIO_MUTUAL and
// auto mTLS.
type identityFlags struct {
	dir string
}

func (i *identityFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&i.dir, "identity-dir", "", "directory with this proxy's workload identity: cert-chain.pem, key.pem and root-cert.pem (as Istio mounts them; `meshentry ca issue` writes them), followed as they rotate; it enables ISTIO_MUTUAL and auto mTLS; empty: none, so ISTIO_MUTUAL routes refuse and auto mTLS stays plaintext")
}

// start loads the identity and follows its rotations until stop is called; a nil source without
// --identity-dir. A directory that does not hold a valid identity stops the start (exit 2), as a
// proxy told to do mutual TLS cannot do it without one.
func (i *identityFlags) start(ctx context.Context, log *slog.Logger) (src *identity.Source, stop func(), err error) {
	if i.dir == "" {
		return nil, func() {}, nil
	}
	src, err = identity.NewSource(identity.Options{Dir: i.dir, Logger: log})
	if err != nil {
		return nil, nil, &exitError{code: 2, err: fmt.Errorf("--identity-dir: %w", err)}
	}
	st := src.Status()
	log.Info("workload identity loaded", "dir", i.dir, "id", st.ID.String(), "not_after", st.NotAfter.UTC())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = src.Run(ctx) // it returns nil when ctx ends; failures to watch are logged inside
	}()
	return src, func() { cancel(); <-done }, nil
}

// withIdentity adds an expired identity to what keeps /ready from answering 200: a proxy whose
// certificate expired fails every mutual TLS handshake.
func withIdentity(base admin.NotReady, src *identity.Source) admin.NotReady {
	if src == nil {
		return base
	}
	return func() []string {
		pending := base()
		if err := src.Check(time.Now()); err != nil {
			pending = append(pending, err.Error())
		}
		return pending
	}
}
