// Package deploy holds no Go code: its tests check the deployment files.
// They render the Helm chart with the pinned helm (make helm builds it into
// .bin), decode every manifest strictly into the Kubernetes API's types,
// and check that the chart, its values and deploy/README.md agree with each
// other and with the services. It is a module of its own, so that the
// Kubernetes modules stay out of the services' builds.
package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func values(t *testing.T) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(read(t, "helm/syncline/values.yaml")), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

// lookup returns the value node at path in a YAML mapping, and the key
// node (which holds the comment above it).
func lookup(t *testing.T, n *yaml.Node, path ...string) (key, value *yaml.Node) {
	t.Helper()
	for _, name := range path {
		key = nil
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				key, n = n.Content[i], n.Content[i+1]
				break
			}
		}
		if key == nil {
			t.Fatalf("values.yaml has no %s", strings.Join(path, "."))
		}
	}
	return key, n
}

// TestValuesSayWhichServicesScale: the services deploy/README.md says share
// their consumers through leases are not held to one replica by
// values.yaml.
func TestValuesSayWhichServicesScale(t *testing.T) {
	m := regexp.MustCompile(`\*\*Replicas\.\*\* Replicas of ([a-z, ]+) share`).FindStringSubmatch(strings.Join(strings.Fields(read(t, "README.md")), " "))
	if m == nil {
		t.Fatal("deploy/README.md no longer says which services' replicas share their consumers")
	}
	scaling := strings.FieldsFunc(strings.ReplaceAll(m[1], " and ", ","), func(r rune) bool { return r == ',' || r == ' ' })
	if len(scaling) < 2 {
		t.Fatalf("read %q as the services that scale", scaling)
	}
	v := values(t)
	for _, name := range scaling {
		key, _ := lookup(t, v, "services", name, "replicas")
		comment := strings.Join(strings.Fields(strings.ReplaceAll(key.HeadComment, "#", "")), " ")
		if strings.Contains(comment, "Must be 1") || strings.Contains(comment, "1 for now") || !strings.Contains(comment, "lease") {
			t.Errorf("values.yaml says of services.%s.replicas %q; deploy/README.md says its replicas share consumers through leases", name, comment)
		}
	}
}
