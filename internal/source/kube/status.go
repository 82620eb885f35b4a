package kube

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	analysis "istio.io/api/analysis/v1alpha1"
	"istio.io/client-go/pkg/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/meshentry/meshentry/internal/diag"
)

const (
	// DefaultStatusQPS and DefaultStatusBurst bound the status writes one meshentry makes, so a
	// fleet of proxies sharing a cluster cannot swamp its API server after a bad apply.
	DefaultStatusQPS   = 10
	DefaultStatusBurst = 20
	// FieldManager names meshentry in the objects' managedFields.
	FieldManager = "meshentry"
	// statusCodeless stands for a finding that carries no code of its own.
	statusCodeless = "ME0000"
)

// message is one entry of status.validationMessages, in the shape Istio's analyzers write:
// type.code, type.name (here the finding's description, field first) and level.
type message struct {
	Code, Description, Level string
}

// objectStatus is the part of an object's status that meshentry owns.
type objectStatus struct {
	kind, namespace, name string
	generation, observed  int64
	messages              []message
}

// statusOf reads back what an object's status says now.
func statusOf(o object) objectStatus {
	st := objectStatus{kind: o.kind, namespace: o.meta.Namespace, name: o.meta.Name,
		generation: o.meta.Generation, observed: o.status.GetObservedGeneration()}
	for _, m := range o.status.GetValidationMessages() {
		st.messages = append(st.messages, message{Code: m.GetType().GetCode(), Description: m.GetType().GetName(), Level: m.GetLevel().String()})
	}
	return st
}

// messagesOf turns findings into status messages, in the order the findings are sorted.
func messagesOf(ds []diag.Diagnostic) []message {
	out := make([]message, 0, len(ds))
	for _, d := range ds {
		m := message{Code: d.Code, Description: d.Message, Level: analysis.AnalysisMessageBase_ERROR.String()}
		if m.Code == "" {
			m.Code = statusCodeless
		}
		if d.Field != "" {
			m.Description = d.Field + ": " + d.Message
		}
		switch d.Level {
		case diag.Warning:
			m.Level = analysis.AnalysisMessageBase_WARNING.String()
		case diag.Info:
			m.Level = analysis.AnalysisMessageBase_INFO.String()
		}
		out = append(out, m)
	}
	return out
}

// statusPatch is the JSON merge patch for the status subresource: the list is replaced whole,
// and null removes it when nothing is left to say.
func statusPatch(generation int64, ms []message) []byte {
	type typ struct {
		Code string `json:"code"`
		Name string `json:"name,omitempty"`
	}
	type entry struct {
		Type  typ    `json:"type"`
		Level string `json:"level"`
	}
	var list []entry // nil marshals as null
	for _, m := range ms {
		list = append(list, entry{Type: typ{Code: m.Code, Name: m.Description}, Level: m.Level})
	}
	b, _ := json.Marshal(map[string]any{"status": map[string]any{"observedGeneration": generation, "validationMessages": list}})
	return b
}

// StatusStats counts what the status writer did.
type StatusStats struct {
	// Written and Failed count status patches; RateLimited the writes that waited for the limit.
	Written, Failed, RateLimited uint64
	// Pending is how many objects wait for a write now.
	Pending int
}

// statusWriter writes status patches in the background, the latest wanted status per object
// winning over one not yet written.
type statusWriter struct {
	client  versioned.Interface
	log     *slog.Logger
	limiter flowcontrol.RateLimiter
	wake    chan struct{}

	mu      sync.Mutex
	pending map[string]pendingWrite
	queue   []string // keys of pending, oldest first
	// written is what was last written per object, so a write the informer has not yet echoed
	// back is not made again.
	written map[string]string

	writes, failures, limited atomic.Uint64
}

type pendingWrite struct {
	st    objectStatus
	patch []byte
}

func newStatusWriter(client versioned.Interface, qps float32, burst int, log *slog.Logger) *statusWriter {
	if qps <= 0 {
		qps = DefaultStatusQPS
	}
	if burst <= 0 {
		burst = DefaultStatusBurst
	}
	return &statusWriter{client: client, log: log, limiter: flowcontrol.NewTokenBucketRateLimiter(qps, burst),
		wake: make(chan struct{}, 1), pending: map[string]pendingWrite{}, written: map[string]string{}}
}

// report compares the findings of one compile with the statuses the objects carry and queues a
// write for each object whose messages changed, or whose messages speak for an older generation.
func (w *statusWriter) report(current map[string]objectStatus, ds []diag.Diagnostic) {
	byFile := map[string][]diag.Diagnostic{}
	for _, d := range ds {
		if strings.HasPrefix(d.File, "kube://") {
			byFile[d.File] = append(byFile[d.File], d)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for key := range w.written {
		if _, ok := current[key]; !ok {
			delete(w.written, key) // the object is gone
		}
	}
	for key, st := range current {
		want := messagesOf(byFile[key])
		if slices.Equal(want, st.messages) && (len(want) == 0 || st.observed == st.generation) {
			delete(w.pending, key)
			continue
		}
		patch := statusPatch(st.generation, want)
		if w.written[key] == string(patch) {
			continue
		}
		if _, queued := w.pending[key]; !queued {
			w.queue = append(w.queue, key)
		}
		w.pending[key] = pendingWrite{st: st, patch: patch}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next pops the oldest pending write.
func (w *statusWriter) next() (string, pendingWrite, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) > 0 {
		key := w.queue[0]
		w.queue = w.queue[1:]
		if p, ok := w.pending[key]; ok {
			delete(w.pending, key)
			// Counted as written from now: a compile reported while the patch is on its way
			// must not queue the same patch again (write forgets it if the patch fails).
			w.written[key] = string(p.patch)
			return key, p, true
		}
	}
	return "", pendingWrite{}, false
}

// run writes the queued patches until ctx ends, no faster than the limiter allows.
func (w *statusWriter) run(ctx context.Context) {
	defer w.limiter.Stop()
	for {
		key, p, ok := w.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		if !w.limiter.TryAccept() {
			w.limited.Add(1)
			if err := w.limiter.Wait(ctx); err != nil {
				return
			}
		}
		w.write(ctx, key, p)
	}
}

// write patches one object's status; a failure forgets what was written, so the next compile
// queues the write again.
func (w *statusWriter) write(ctx context.Context, key string, p pendingWrite) {
	k := kindNamed(p.st.kind)
	err := k.patch(ctx, w.client, p.st.namespace, p.st.name, p.patch, metav1.PatchOptions{FieldManager: FieldManager})
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.writes.Add(1)
	case apierrors.IsNotFound(err):
		// Deleted since the compile: nothing to report on.
		delete(w.written, key)
	default:
		w.failures.Add(1)
		delete(w.written, key)
		w.log.Warn("kube status write failed", "object", key, "err", err)
	}
}

func (w *statusWriter) stats() StatusStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return StatusStats{Written: w.writes.Load(), Failed: w.failures.Load(), RateLimited: w.limited.Load(), Pending: len(w.pending)}
}
