package kubeapi

import (
	"os"
	"strings"
	"testing"
)

func TestKubeVersionMatchesTheToolsModule(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../tools/kube/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if want := "\tk8s.io/kubernetes " + KubeVersion + " "; !strings.Contains(string(b), want) {
		t.Fatalf("tools/kube/go.mod lacks %q: the harness would look for a binary no build makes", want)
	}
}

func TestTheEmbeddedCRDsAreTheFiveNetworkingKinds(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"serviceentries", "destinationrules", "virtualservices", "gateways", "sidecars"} {
		if !strings.Contains(string(crds), "name: "+name+".networking.istio.io\n") {
			t.Errorf("testdata/crds.yaml lacks %s", name)
		}
	}
}
