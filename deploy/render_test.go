package deploy

import (
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

const chartDir = "helm/syncline"

// helm is the pinned helm binary that make builds into the repository's
// .bin (HELM_VERSION in the Makefile), or $HELM. The test fails, saying how
// to build it, when it is missing or of another version.
func helm(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		abs, err := filepath.Abs(filepath.Join("..", ".bin", "helm"))
		if err != nil {
			t.Fatal(err)
		}
		path = abs
	}
	want := regexp.MustCompile(`(?m)^HELM_VERSION\s*:=\s*(\S+)`).FindStringSubmatch(read(t, "../Makefile"))
	if want == nil {
		t.Fatal("the Makefile has no HELM_VERSION: the test no longer finds the pinned helm version")
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("no helm binary at %s (%v): `make helm` builds helm %s there (make lint and make test build it too)", path, err, want[1])
	}
	if info.Main.Path != "helm.sh/helm/v4" || info.Main.Version != want[1] {
		t.Fatalf("%s is %s %s, not helm.sh/helm/v4 %s as the Makefile pins: remove it and run `make helm`", path, info.Main.Path, info.Main.Version, want[1])
	}
	return path
}

// valuesFiles are the example values files make lint renders: every
// deploy/helm/values-*.yaml.
func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("helm/values-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no helm/values-*.yaml under deploy/ (%v)", err)
	}
	return files
}

// render runs helm template on the chart with the values files and --set
// arguments given, and returns what helm wrote, or its error output.
func render(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm(t), append([]string{"template", "syncline", chartDir, "--namespace", "syncline"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm template %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// PodMonitor is the part of the Prometheus Operator's PodMonitor
// (monitoring.coreos.com/v1) that the chart writes: the operator's own
// types would bring its whole module in for one small kind. A field the
// chart writes that is not here fails the strict decode, as for the
// Kubernetes types.
type PodMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

func (p *PodMonitor) DeepCopyObject() runtime.Object { c := *p; return &c }

// decoder decodes a manifest strictly into the Kubernetes API types: an
// unknown field, a field in the wrong case or a duplicate field is an
// error, and so is a kind the scheme does not know.
var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme, autoscalingv2.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	scheme.AddKnownTypes(schema.GroupVersion{Group: "monitoring.coreos.com", Version: "v1"}, &PodMonitor{})
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
}()

// manifests is one rendering, decoded: each object by kind and name.
type manifests map[string]map[string]runtime.Object

// decode splits helm's output into its documents and decodes each strictly.
func decode(out string) (manifests, error) {
	m := manifests{}
	var errs []error
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(out, -1) {
		source := regexp.MustCompile(`(?m)^# Source: (.+)$`).FindStringSubmatch(doc)
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		where := fmt.Sprintf("document %d", i)
		if source != nil {
			where += " (" + source[1] + ")"
		}
		obj, gvk, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		name := obj.(metav1.Object).GetName()
		if m[gvk.Kind] == nil {
			m[gvk.Kind] = map[string]runtime.Object{}
		}
		if _, dup := m[gvk.Kind][name]; dup {
			errs = append(errs, fmt.Errorf("%s: a second %s named %s", where, gvk.Kind, name))
		}
		m[gvk.Kind][name] = obj
	}
	return m, errors.Join(errs...)
}

// renderDecoded renders and decodes, failing the test on any error.
func renderDecoded(t *testing.T, args ...string) manifests {
	t.Helper()
	out, err := render(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decode(out)
	if err != nil {
		t.Fatalf("rendered with %q, the chart writes manifests that are not the Kubernetes API's:\n%v", args, err)
	}
	return m
}

func deployments(m manifests) map[string]*appsv1.Deployment {
	d := map[string]*appsv1.Deployment{}
	for name, o := range m["Deployment"] {
		d[name] = o.(*appsv1.Deployment)
	}
	return d
}

// component is the service a resource belongs to.
func component(o metav1.Object) string { return o.GetLabels()["app.kubernetes.io/component"] }
