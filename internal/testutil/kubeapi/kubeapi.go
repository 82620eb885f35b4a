// Package kubeapi runs a real etcd and kube-apiserver on loopback for tests, with a token user,
// a kubeconfig and Istio's networking CRDs installed. kube-apiserver is built by
// tools/kube/build.sh (.ci/run calls it) into a cache folder keyed by KubeVersion.
package kubeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// KubeVersion is the k8s.io/kubernetes version tools/kube/go.mod builds; a test checks they agree.
const KubeVersion = "v1.37.2"

// Token is the bearer token of the harness's admin user (group system:masters).
const Token = "meshentry-test-admin-token"

// UserToken is the token of "meshentry-user", a user with no rights until a test binds a role.
const UserToken = "meshentry-test-user-token"

//go:embed testdata/crds.yaml
var crds []byte

// Server is one etcd and one kube-apiserver, started by Start and ended by Stop.
type Server struct {
	// Dir holds the data, certificates and logs; Kubeconfig is the admin's kubeconfig in it.
	Dir, Kubeconfig string
	// URL is the API server's https address.
	URL string

	etcdURL string
	apiPort int
	mu      sync.Mutex
	etcd    *proc
	api     *proc
}

// proc is a started server process; done closes when it has been reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// APIServerBinary finds kube-apiserver: $MESHENTRY_KUBE_APISERVER, else the cache folder
// tools/kube/build.sh writes to.
func APIServerBinary() (string, error) {
	if p := os.Getenv("MESHENTRY_KUBE_APISERVER"); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("kube-apiserver: %w", err)
	}
	p := filepath.Join(cache, "meshentry", "kube", KubeVersion, "kube-apiserver")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kube-apiserver %s not built (run tools/kube/build.sh, as .ci/run does): %w", KubeVersion, err)
	}
	return p, nil
}

// Start runs etcd and kube-apiserver in dir and installs the CRDs; the caller must Stop it.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := APIServerBinary()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, fmt.Errorf("etcd (Debian's etcd-server, which .ci/run installs): %w", err)
	}
	s := &Server{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	s.apiPort = ports[2]
	s.URL = fmt.Sprintf("https://127.0.0.1:%d", s.apiPort)
	if err := s.writeFiles(); err != nil {
		return nil, err
	}
	if err := s.startEtcd(ctx, ports[1]); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.StartAPIServer(ctx, bin); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.installCRDs(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// freePorts asks the kernel for n free loopback ports; they are closed again for the servers
// to bind, which another process could take in between, as with any such harness.
func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// writeFiles writes the token file, the service-account key and the kubeconfig.
func (s *Server) writeFiles() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("service account key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("service account key: %w", err)
	}
	files := map[string][]byte{
		"sa.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"tokens.csv": []byte(Token + ",meshentry-admin,1,system:masters\n" +
			UserToken + ",meshentry-user,2\n"),
		"kubeconfig": []byte(s.KubeconfigFor("admin", Token)),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return fmt.Errorf("harness file: %w", err)
		}
	}
	return nil
}

// KubeconfigFor returns a kubeconfig for user with token; the server's certificate is the
// self-signed one kube-apiserver made in its cert-dir, so verification is skipped.
func (s *Server) KubeconfigFor(user, token string) string {
	return kubeconfigAt(s.URL, user, token)
}

// kubeconfigAt is a kubeconfig for user with token against the API server at url.
func kubeconfigAt(url, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: %s
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: %s
current-context: test
`, url, user, token, user)
}

func (s *Server) startEtcd(ctx context.Context, peerPort int) error {
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cmd := exec.Command("etcd", "--name=test", "--data-dir="+filepath.Join(s.Dir, "etcd"),
		"--listen-client-urls="+s.etcdURL, "--advertise-client-urls="+s.etcdURL,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=test="+peer,
		"--logger=zap", "--log-level=warn")
	p, err := s.launch(cmd, "etcd.log")
	if err != nil {
		return err
	}
	s.etcd = p
	return waitHTTP(ctx, s.etcdURL+"/health", "", 60*time.Second)
}

// StartAPIServer starts kube-apiserver on the same port and etcd as before (again after
// StopAPIServer: the restart test uses that) and waits for /readyz.
func (s *Server) StartAPIServer(ctx context.Context, bin string) error {
	p, err := s.launchAPIServer(ctx, bin, s.apiPort, "kube-apiserver.log")
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.api = p
	s.mu.Unlock()
	return waitHTTP(ctx, s.URL+"/readyz", Token, 120*time.Second)
}

// KubectlFunc runs kubectl against one API server as the admin (see Server.Kubectl).
type KubectlFunc func(ctx context.Context, stdin string, env []string, args ...string) (string, error)

// StartSideAPIServer starts a second kube-apiserver against the same etcd, with the same
// token file, key and flags but its own port, and waits until it serves the networking CRDs.
// It lets a test change the cluster while the main API server (the one its clients know) is
// stopped, so those clients are provably disconnected when the change is made.
func (s *Server) StartSideAPIServer(ctx context.Context) (kubectl KubectlFunc, stop func(), err error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, nil, err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	kubeconfig := filepath.Join(s.Dir, "kubeconfig-side")
	if err := os.WriteFile(kubeconfig, []byte(kubeconfigAt(url, "admin", Token)), 0o600); err != nil {
		return nil, nil, fmt.Errorf("side kubeconfig: %w", err)
	}
	p, err := s.launchAPIServer(ctx, "", ports[0], "kube-apiserver-side.log")
	if err != nil {
		return nil, nil, err
	}
	// /readyz waits for the CRD informer; the kind's own path proves it is served here too.
	for _, path := range []string{"/readyz", "/apis/networking.istio.io/v1beta1/serviceentries"} {
		if err := waitHTTP(ctx, url+path, Token, 120*time.Second); err != nil {
			p.stop()
			return nil, nil, fmt.Errorf("side kube-apiserver: %w", err)
		}
	}
	kubectl = func(ctx context.Context, stdin string, env []string, args ...string) (string, error) {
		return runKubectl(ctx, kubeconfig, stdin, env, args...)
	}
	return kubectl, p.stop, nil
}

// launchAPIServer starts kube-apiserver on port against the harness's etcd, logging to logName.
func (s *Server) launchAPIServer(ctx context.Context, bin string, port int, logName string) (*proc, error) {
	if bin == "" {
		var err error
		if bin, err = APIServerBinary(); err != nil {
			return nil, err
		}
	}
	key := filepath.Join(s.Dir, "sa.key")
	cmd := exec.Command(bin,
		"--etcd-servers="+s.etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		// The self-signed serving certificate is made once in cert-dir and reused by every start.
		"--cert-dir="+filepath.Join(s.Dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+key, "--service-account-signing-key-file="+key,
		"--token-auth-file="+filepath.Join(s.Dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none",
		"--enable-priority-and-fairness=false",
		"-v=0")
	return s.launch(cmd, logName)
}

// StopAPIServer ends kube-apiserver, leaving etcd and its data.
func (s *Server) StopAPIServer() {
	s.mu.Lock()
	p := s.api
	s.api = nil
	s.mu.Unlock()
	p.stop()
}

// Stop ends both servers; the folder is the caller's to remove.
func (s *Server) Stop() {
	s.StopAPIServer()
	s.etcd.stop()
	s.etcd = nil
}

func (s *Server) launch(cmd *exec.Cmd, logName string) (*proc, error) {
	log, err := os.Create(filepath.Join(s.Dir, logName))
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", filepath.Base(cmd.Path), err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Killed with the test binary, should it die without calling Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		cmd.Wait()
		log.Close()
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after a grace period, and waits until the process is reaped.
func (p *proc) stop() {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// httpClient talks to the API server, whose certificate is self-signed.
var httpClient = &http.Client{Timeout: 10 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// waitHTTP polls url until it answers 200.
func waitHTTP(ctx context.Context, url, token string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		code, body, err := do(ctx, http.MethodGet, url, token, nil)
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("status %d: %s", code, strings.TrimSpace(string(body)))
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %v: %w", url, limit, last)
}

func do(ctx context.Context, method, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes(), err
}

// installCRDs creates the five networking.istio.io CRDs and waits until each kind is served.
func (s *Server) installCRDs(ctx context.Context) error {
	for _, doc := range bytes.Split(crds, []byte("\n---\n")) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("CRD: %w", err)
		}
		code, body, err := do(ctx, http.MethodPost, s.URL+"/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Token, js)
		if err != nil {
			return fmt.Errorf("create CRD: %w", err)
		}
		if code != http.StatusCreated && code != http.StatusConflict {
			return fmt.Errorf("create CRD: status %d: %s", code, body)
		}
	}
	for _, plural := range []string{"serviceentries", "destinationrules", "virtualservices", "gateways", "sidecars"} {
		for _, v := range []string{"v1", "v1beta1", "v1alpha3"} {
			if err := waitHTTP(ctx, s.URL+"/apis/networking.istio.io/"+v+"/"+plural, Token, 60*time.Second); err != nil {
				return fmt.Errorf("CRD %s not served: %w", plural, err)
			}
		}
	}
	return nil
}

// Kubectl runs kubectl against the server as the admin, with stdin, and returns its output;
// the error carries the output too.
func (s *Server) Kubectl(ctx context.Context, stdin string, env []string, args ...string) (string, error) {
	return runKubectl(ctx, s.Kubeconfig, stdin, env, args...)
}

// runKubectl runs kubectl with kubeconfig and stdin; the error carries the output too.
func runKubectl(ctx context.Context, kubeconfig, stdin string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Post sends a JSON body to path (such as /apis/networking.istio.io/v1/namespaces/default/serviceentries)
// as the admin and returns an error unless the API server answers 201 Created.
func (s *Server) Post(ctx context.Context, path string, body []byte) error {
	code, resp, err := do(ctx, http.MethodPost, s.URL+path, Token, body)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if code != http.StatusCreated {
		return fmt.Errorf("POST %s: status %d: %s", path, code, resp)
	}
	return nil
}
