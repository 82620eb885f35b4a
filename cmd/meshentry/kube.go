package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/source/kube"
)

// kubeFlags make `run` read its config from a Kubernetes API server as well as, or instead of, -f.
type kubeFlags struct {
	enabled     bool
	kubeconfig  string
	context     string
	namespace   string
	writeStatus bool
	statusQPS   float32
	statusBurst int
	qps         float32
	burst       int
	syncTimeout time.Duration
	debounce    time.Duration
}

func (k *kubeFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&k.enabled, "kube", false, "read ServiceEntry, DestinationRule, VirtualService, Gateway and Sidecar (networking.istio.io) from a Kubernetes API server, live; combines with -f")
	fl.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file for --kube (default: the in-cluster config, else $KUBECONFIG, else ~/.kube/config)")
	fl.StringVar(&k.context, "kube-context", "", "kubeconfig context for --kube (default: its current context)")
	fl.StringVar(&k.namespace, "kube-namespace", "", "watch only this namespace (default: all namespaces)")
	fl.BoolVar(&k.writeStatus, "kube-write-status", true, "write validation findings to each object's status.validationMessages (needs patch on the status subresources; false for read-only RBAC)")
	fl.Float32Var(&k.statusQPS, "kube-status-qps", kube.DefaultStatusQPS, "status writes per second at most")
	fl.IntVar(&k.statusBurst, "kube-status-burst", kube.DefaultStatusBurst, "status writes allowed in a burst above --kube-status-qps")
	fl.Float32Var(&k.qps, "kube-qps", kube.DefaultQPS, "requests per second to the API server at most, all kinds")
	fl.IntVar(&k.burst, "kube-burst", kube.DefaultBurst, "requests allowed in a burst above --kube-qps")
	fl.DurationVar(&k.syncTimeout, "kube-sync-timeout", time.Minute, "how long startup waits for the initial list of the five kinds before giving up")
	fl.DurationVar(&k.debounce, "kube-debounce", kube.DefaultDebounce, "quiet time after an API event before a new snapshot is compiled, so one apply of many objects makes one snapshot")
}

// kubeRun is the Kubernetes source of a running `run`, merged with its file source; a nil
// *kubeRun stands for --kube off, and its methods then pass the file source straight through.
type kubeRun struct {
	src    *kube.Source
	merger *kube.Merger
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
}

// startKube lists the five kinds, waiting up to --kube-sync-timeout, and returns the first
// snapshot of files and cluster together, compiled with opts as the files are. With --kube off
// it returns files unchanged.
func startKube(ctx context.Context, k *kubeFlags, log *slog.Logger, files *compile.Result, opts ...compile.Option) (*kubeRun, *compile.Result, error) {
	if !k.enabled {
		return nil, files, nil
	}
	if k.syncTimeout <= 0 || k.debounce < 0 || k.qps < 0 || k.statusQPS < 0 {
		return nil, nil, usageError("--kube-sync-timeout must be positive; --kube-debounce, --kube-qps and --kube-status-qps must not be negative")
	}
	src, err := kube.New(kube.Config{
		Connection: kube.Connection{Kubeconfig: k.kubeconfig, Context: k.context, QPS: k.qps, Burst: k.burst},
		Namespace:  k.namespace, Debounce: k.debounce, Logger: log.With("source", "kube"),
		WriteStatus: k.writeStatus, StatusQPS: k.statusQPS, StatusBurst: k.statusBurst,
	})
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	klog.SetSlogLogger(log.With("source", "client-go"))
	runCtx, cancel := context.WithCancel(ctx)
	start := time.Now()
	// The informers live as long as the run; only the wait for the first list is bounded.
	if err := src.Start(runCtx, k.syncTimeout); err != nil {
		cancel()
		src.Stop()
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("%w (--kube-sync-timeout)", err)}
	}
	r := &kubeRun{src: src, merger: kube.NewMerger(files, opts...), log: log, ctx: runCtx, cancel: cancel}
	res := r.merger.Kube(src.Documents())
	log.Info("kube config listed", "namespace", k.namespace, "documents", res.Documents, "services", len(res.Snapshot.Services),
		"took", time.Since(start).Round(time.Millisecond))
	r.findings(res)
	return r, res, nil
}

// findings logs the errors of the cluster's objects (each is left out alone, as --allow-invalid
// does for files) and queues their status writes.
func (r *kubeRun) findings(res *compile.Result) {
	errs, _, _ := diag.Split(res.Diagnostics)
	for i, d := range errs {
		if i == 20 {
			r.log.Warn("more config errors not logged", "count", len(errs)-i)
			break
		}
		r.log.Error("document left out", "finding", d.String())
	}
	r.src.Report(res.Diagnostics)
}

// fileApply returns what the file watcher hands each accepted config to.
func (r *kubeRun) fileApply(publish func(*registry.Snapshot)) func(*compile.Result) {
	if r == nil {
		return func(res *compile.Result) { publish(res.Snapshot) }
	}
	return func(res *compile.Result) { r.merger.Files(res) }
}

// serve hands every later snapshot to publish and runs the informers' updates and status writes; the
// returned function stops them and waits.
func (r *kubeRun) serve(publish func(*registry.Snapshot)) (stop func()) {
	if r == nil {
		return func() {}
	}
	r.merger.SetPublish(func(res *compile.Result) {
		publish(res.Snapshot)
		r.log.Info("config compiled", "version", res.Snapshot.Version, "services", len(res.Snapshot.Services),
			"documents", res.Documents, "errors", res.Errors())
		r.findings(res)
	})
	var wg sync.WaitGroup
	wg.Go(func() { r.src.Run(r.ctx, func(docs []*config.Document) { r.merger.Kube(docs) }) })
	return func() {
		r.cancel()
		wg.Wait()
		r.src.Stop()
	}
}

// newKubeCommand is `meshentry kube`, the commands about running against a cluster.
func newKubeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "kube", Short: "Commands for reading the config from a Kubernetes API server (run --kube)"}
	var r kube.RBAC
	rbac := &cobra.Command{
		Use:   "rbac",
		Short: "Print the minimal ClusterRole and binding that `run --kube` needs, as YAML for kubectl apply -f -",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return kube.WriteRBAC(cmd.OutOrStdout(), r)
		},
	}
	fl := rbac.Flags()
	fl.StringVar(&r.Name, "name", "meshentry", "name of the role and of its binding")
	fl.StringVar(&r.ServiceAccount, "service-account", "meshentry", "service account the role is bound to")
	fl.StringVar(&r.ServiceAccountNamespace, "service-account-namespace", "default", "namespace of --service-account")
	fl.StringVar(&r.User, "user", "", "bind a user (token-file or certificate user, as on a VM) instead of the service account")
	fl.StringVar(&r.Namespace, "kube-namespace", "", "make a Role and RoleBinding in this namespace, for run --kube-namespace, instead of cluster-wide ones")
	fl.BoolVar(&r.WriteStatus, "kube-write-status", true, "grant patch on the status subresources; false for run --kube-write-status=false")
	cmd.AddCommand(rbac)
	return cmd
}
