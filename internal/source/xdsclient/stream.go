package xdsclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// streamState is what the stream goroutine owns across reconnections: the last good documents
// and version of each collection, kept while the server is away and offered to it on return
// (so a server with the same content sends nothing).
type streamState struct {
	c        *Client
	docs     map[string][]*config.Document
	versions map[string]string // accepted VersionInfo per type URL, sent back on reconnect
	contents map[string]string // resource names and versions per type URL, to skip no-op pushes
	answered map[string]bool   // collections answered once (ACK or NACK) since startup
	version  uint64            // of the last published snapshot
	started  bool              // the startup config was handed to Open
	deadline <-chan time.Time  // the initial fetch timeout, nil once started
}

func newStreamState(c *Client) *streamState {
	return &streamState{c: c, docs: map[string][]*config.Document{}, versions: map[string]string{},
		contents: map[string]string{}, answered: map[string]bool{}}
}

// loop keeps a stream open until ctx ends, reconnecting with jittered exponential back-off; a
// stream that delivered a response resets the back-off.
func (s *streamState) loop(ctx context.Context) {
	timer := time.NewTimer(s.c.cfg.InitialFetchTimeout)
	defer timer.Stop()
	s.deadline = timer.C
	failures := 0
	for {
		got, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			failures = 0
		}
		delay := backoff(s.c.cfg.BackoffBase, s.c.cfg.BackoffMax, failures)
		failures++
		s.c.mu.Lock()
		s.c.stats.Failures++
		if grpcstatus.Code(err) == codes.ResourceExhausted {
			s.c.stats.Oversize++
		}
		s.c.mu.Unlock()
		s.c.log.Warn("xds stream lost; serving the last good config and retrying", "err", err, "retry_in", delay.Round(time.Millisecond))
		wait := time.NewTimer(delay)
	waiting:
		for {
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-s.deadline:
				s.startEmpty()
			case <-wait.C:
				break waiting
			}
		}
	}
}

// backoff returns a wait drawn from [d/2, d], d = base·2^failures capped at max: the jitter keeps a
// fleet that lost its server from coming back all at once.
func backoff(base, maxWait time.Duration, failures int) time.Duration {
	d := base
	for i := 0; i < failures && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + rand.N(d/2+1)
}

// message is what the receiving goroutine hands the session loop.
type message struct {
	resp *discovery.DiscoveryResponse
	err  error
}

// session runs one stream: subscribe to every collection, then answer each response. got says
// whether any response arrived.
func (s *streamState) session(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.c.ads.StreamAggregatedResources(ctx)
	if err != nil {
		return false, fmt.Errorf("open stream: %w", err)
	}
	s.c.mu.Lock()
	s.c.stats.Streams++
	s.c.mu.Unlock()
	node := &core.Node{Id: s.c.cfg.NodeID, UserAgentName: "meshentry"}
	for _, u := range mcp.TypeURLs {
		req := &discovery.DiscoveryRequest{Node: node, TypeUrl: u, VersionInfo: s.versions[u]}
		if err := stream.Send(req); err != nil {
			return false, fmt.Errorf("subscribe %s: %w", u, err)
		}
	}
	in := make(chan message)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred before), so Recv has returned
	wg.Go(func() {
		for {
			resp, err := stream.Recv()
			select {
			case in <- message{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	defer s.setConnected(false)
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-s.deadline:
			s.startEmpty()
		case m := <-in:
			if errors.Is(m.err, io.EOF) {
				return got, errStreamEnded
			}
			if m.err != nil {
				return got, fmt.Errorf("receive: %w", m.err)
			}
			if !got {
				s.setConnected(true)
			}
			got = true
			if err := stream.Send(s.answer(m.resp)); err != nil {
				return got, fmt.Errorf("answer %s: %w", m.resp.GetTypeUrl(), err)
			}
		}
	}
}

// setConnected records whether the server is answering on the current stream.
func (s *streamState) setConnected(up bool) {
	s.c.mu.Lock()
	s.c.stats.Connected = up
	s.c.mu.Unlock()
}

// startEmpty hands Open an empty config when the server did not answer in time.
func (s *streamState) startEmpty() {
	s.deadline = nil
	if s.started {
		return
	}
	s.c.log.Warn("no complete config from the xDS server in time; serving an empty registry until it answers",
		"initial_fetch_timeout", s.c.cfg.InitialFetchTimeout)
	s.version++
	s.started = true
	s.c.publish(compile.Documents(config.Result{}, s.version, s.c.cfg.Compile...), true)
}

// answer decodes, compiles and publishes one response, returning the ACK or the NACK.
func (s *streamState) answer(resp *discovery.DiscoveryResponse) *discovery.DiscoveryRequest {
	u := resp.GetTypeUrl()
	ack := &discovery.DiscoveryRequest{TypeUrl: u, ResponseNonce: resp.GetNonce(), VersionInfo: resp.GetVersionInfo()}
	nack := func(reason string, findings []diag.Diagnostic) *discovery.DiscoveryRequest {
		s.answered[u] = true
		s.c.refused(reason, findings)
		lines := []string{reason}
		for _, d := range findings[:min(len(findings), maxNackFindings)] {
			lines = append(lines, d.String())
		}
		if more := len(findings) - maxNackFindings; more > 0 {
			lines = append(lines, fmt.Sprintf("and %d more", more))
		}
		s.c.log.Error("xds config refused (NACK); the last good config keeps serving", "type", u,
			"version", resp.GetVersionInfo(), "findings", strings.Join(lines[1:], "; "), "reason", reason)
		ack.VersionInfo = s.versions[u]
		ack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: strings.Join(lines, "\n")}
		s.startWithLastGood()
		return ack
	}
	if mcp.KindOf(u) == "" {
		return nack("type "+u+" was not subscribed", nil)
	}
	docs, content, findings := s.decode(u, resp)
	if len(findings) > 0 {
		return nack(fmt.Sprintf("%d %s not decoded", len(findings), plural(len(findings), "resource", "resources")), findings)
	}
	if s.answered[u] && content == s.contents[u] && s.versions[u] != "" {
		s.versions[u] = resp.GetVersionInfo()
		return ack // same documents under a new version (a restarted server): nothing to swap
	}
	res := s.compileWith(u, docs)
	if n := res.Errors(); n > 0 {
		errs, _, _ := diag.Split(res.Diagnostics)
		return nack(fmt.Sprintf("config has %d %s", n, plural(n, "error", "errors")), errs)
	}
	s.answered[u] = true
	s.docs[u], s.versions[u], s.contents[u] = docs, resp.GetVersionInfo(), content
	if !s.complete() {
		return ack // the first snapshot waits for every collection, so it is not served half-made
	}
	s.version++
	s.c.log.Info("xds config accepted", "type", u, "version", resp.GetVersionInfo(), "snapshot", s.version,
		"services", len(res.Snapshot.Services), "documents", res.Documents)
	s.c.publish(res, !s.started)
	s.started, s.deadline = true, nil
	return ack
}

// startWithLastGood publishes the last good documents as the startup config once every collection has
// answered, even when the latest answer was a NACK, so that a bad collection does not hold the
// others back until the initial fetch timeout.
func (s *streamState) startWithLastGood() {
	if s.started || !s.complete() {
		return
	}
	s.version++
	s.c.publish(s.compileWith("", nil), true)
	s.started, s.deadline = true, nil
}

// complete reports whether every collection has answered.
func (s *streamState) complete() bool {
	for _, u := range mcp.TypeURLs {
		if !s.answered[u] {
			return false
		}
	}
	return true
}

// compileWith compiles the accepted documents with those of type u replaced by docs (u "" for
// none replaced), in the order of mcp.TypeURLs, as the next version.
func (s *streamState) compileWith(u string, docs []*config.Document) *compile.Result {
	var all []*config.Document
	for _, t := range mcp.TypeURLs {
		if t == u {
			all = append(all, docs...)
		} else {
			all = append(all, s.docs[t]...)
		}
	}
	for i, d := range all {
		d.Order = i
	}
	return compile.Documents(config.Result{Documents: all, Read: len(all)}, s.version+1, s.c.cfg.Compile...)
}

// decode turns a response's resources into documents; content fingerprints them by name and
// version; findings say which could not be decoded.
func (s *streamState) decode(u string, resp *discovery.DiscoveryResponse) (docs []*config.Document, content string, findings []diag.Diagnostic) {
	kind := mcp.KindOf(u)
	keys := make([]string, 0, len(resp.GetResources()))
	prefix := s.c.source() + "/" + u + "/"
	for i, a := range resp.GetResources() {
		src := fmt.Sprintf("%sresources[%d]", prefix, i)
		doc, err := mcp.Document(u, src, a, s.c.cfg.Namespace)
		if err != nil {
			findings = append(findings, diag.Diagnostic{Level: diag.Error, File: src, Line: 1, Kind: kind, Message: err.Error()})
			continue
		}
		doc.File = prefix + doc.Namespace + "/" + doc.Name
		docs = append(docs, doc)
		sum := sha256.Sum256(a.GetValue())
		keys = append(keys, doc.Namespace+"/"+doc.Name+"@"+hex.EncodeToString(sum[:8]))
	}
	slices.Sort(keys)
	return docs, strings.Join(keys, ","), findings
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
