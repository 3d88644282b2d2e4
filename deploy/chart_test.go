// Package deploy holds no Go code: its test checks that the deployment
// files agree with each other and with the services, by reading them (no
// helm or docker needed).
package deploy

import (
	"os"
	"regexp"
	"slices"
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

// TestExistingSecretRecipeHoldsEveryKeyTheDeploymentsRead: a Secret made
// as deploy/README.md says, or by the chart, holds every key that a
// Deployment reads from it, so that no pod waits for a missing key.
func TestExistingSecretRecipeHoldsEveryKeyTheDeploymentsRead(t *testing.T) {
	v := values(t)
	var wanted []string
	for _, m := range regexp.MustCompile(`\$\.Values\.secretKeys\.(\w+)`).FindAllStringSubmatch(read(t, "helm/syncline/templates/deployments.yaml"), -1) {
		_, key := lookup(t, v, "secretKeys", m[1])
		if !slices.Contains(wanted, key.Value) {
			wanted = append(wanted, key.Value)
		}
	}
	if len(wanted) == 0 {
		t.Fatal("the Deployments read no key of the Secret: the test no longer reads them right")
	}

	var made []string
	for _, m := range regexp.MustCompile(`\{\{ \.Values\.secretKeys\.(\w+) \}\}:`).FindAllStringSubmatch(read(t, "helm/syncline/templates/secret.yaml"), -1) {
		_, key := lookup(t, v, "secretKeys", m[1])
		made = append(made, key.Value)
	}

	readme := read(t, "README.md")
	i := strings.Index(readme, "create secret generic")
	if i < 0 {
		t.Fatal("deploy/README.md has no `kubectl create secret generic` recipe for existingSecret")
	}
	recipe := readme[i:]
	recipe = recipe[:strings.Index(recipe, "```")]
	var given []string
	for _, m := range regexp.MustCompile(`--from-(?:literal|file)=([\w.-]+)=`).FindAllStringSubmatch(recipe, -1) {
		given = append(given, m[1])
	}

	for _, key := range wanted {
		if !slices.Contains(given, key) {
			t.Errorf("the Deployments read the key %q of existingSecret, which the recipe in deploy/README.md does not create (it creates %q)", key, given)
		}
		if !slices.Contains(made, key) {
			t.Errorf("the Deployments read the key %q, which the chart's own Secret does not hold (it holds %q)", key, made)
		}
	}
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
