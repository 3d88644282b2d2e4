package deploy

import (
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A callout issuer seed of the right form (syncline nats-key makes real
// ones); the chart only carries it.
const testSeed = "SAAGNJOZTRPYO7NJ5RVQKPHNVXRYMKQIZGWQ2UCPDT4TDOXC3LGMBAXFFA"

// renderCase is one way to install the chart: values files and --set.
type renderCase struct {
	name string
	args []string
	// existingSecret: the pods read a Secret made by the recipe in
	// deploy/README.md, not the chart's own.
	existingSecret bool
}

// cases are the example values files under deploy/helm and the chart's
// defaults with what they require, with and without the options.
func cases(t *testing.T) []renderCase {
	t.Helper()
	var cs []renderCase
	for _, f := range valuesFiles(t) {
		cs = append(cs, renderCase{name: f, args: []string{"-f", f}, existingSecret: strings.Contains(read(t, f), "\nexistingSecret: ")})
	}
	return append(cs,
		renderCase{name: "defaults", args: []string{"--set", "database.url=postgres://syncline@db:5432/syncline"}},
		renderCase{name: "chart Secret with NATS credentials and every option", args: []string{
			"--set", "database.url=postgres://syncline@db:5432/syncline",
			"--set", "nats.auth.user=syncline,nats.auth.password=secret-password,nats.auth.callout=true,nats.auth.calloutSeed=" + testSeed,
			"--set", "metrics.podMonitor.enabled=true,services.connector.autoscaling.enabled=true,services.dedup.autoscaling.enabled=true",
			"--set", "services.mapper.autoscaling.enabled=true,services.eventlog.autoscaling.enabled=true",
			"--set", "otlpEndpoint=https://otel.example.com,egress.allow=none,egress.protect=postgres://db:5432/syncline",
		}},
		renderCase{name: "without the optional resources", args: []string{
			"--set", "database.url=postgres://syncline@db:5432/syncline",
			"--set", "networkPolicy.enabled=false,podDisruptionBudget.enabled=false,topologySpreadConstraints=null",
		}},
		renderCase{name: "existing Secret with NATS credentials", existingSecret: true, args: []string{
			"--set", "existingSecret=syncline,nats.auth.user=syncline,nats.auth.callout=true",
		}},
	)
}

// TestChartLintsAndRendersStrictly: helm lint passes on every values file,
// and every manifest the chart renders decodes strictly into the
// Kubernetes API's types, so a misspelt or misplaced field fails here, not
// at install.
func TestChartLintsAndRendersStrictly(t *testing.T) {
	for _, f := range valuesFiles(t) {
		out, err := exec.Command(helm(t), "lint", "--strict", chartDir, "-f", f).CombinedOutput()
		if err != nil {
			t.Errorf("helm lint --strict %s -f %s: %v\n%s", chartDir, f, err, out)
		}
	}
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := renderDecoded(t, c.args...)
			if n := len(m["Deployment"]); n != 5 {
				t.Errorf("rendered %d Deployments, want the five services'", n)
			}
		})
	}
}

// TestStrictDecodeRefusesWhatTheAPIDoesNotKnow: the decoder the test
// relies on refuses an unknown field, a field in the wrong case, a
// duplicate field and an unknown kind, and a PodMonitor's unknown field.
func TestStrictDecodeRefusesWhatTheAPIDoesNotKnow(t *testing.T) {
	good := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
spec:
  selector:
    matchLabels: {a: b}
  template:
    metadata:
      labels: {a: b}
    spec:
      containers:
        - name: c
          image: i
          ports:
            - containerPort: 8080
`
	if _, err := decode(good); err != nil {
		t.Fatalf("a valid Deployment is refused: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field":   strings.Replace(good, "  selector:", "  replicaz: 2\n  selector:", 1),
		"wrong case":      strings.Replace(good, "containerPort", "ContainerPort", 1),
		"duplicate field": strings.Replace(good, "          image: i", "          image: i\n          image: j", 1),
		"misplaced field": strings.Replace(good, "      containers:", "      containerPort: 1\n      containers:", 1),
		"unknown kind":    strings.Replace(good, "kind: Deployment", "kind: Deploymnet", 1),
		"pod monitor": `apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: p}
spec:
  selector: {matchLabels: {a: b}}
  podMetricsEndpoints:
    - port: http
      scrapeIntervall: 30s
`,
	} {
		if _, err := decode(bad); err == nil {
			t.Errorf("%s: decoded without an error:\n%s", name, bad)
		}
	}
}

// TestValuesAreCheckedAgainstTheSchema: values.schema.json refuses a
// misspelt value, a value out of range and a malformed key, naming it.
func TestValuesAreCheckedAgainstTheSchema(t *testing.T) {
	base := []string{"--set", "database.url=postgres://syncline@db:5432/syncline"}
	for set, want := range map[string]string{
		"services.mapper.replicaz=2":                     "replicaz",
		"networkPolicy.enabeld=false":                    "enabeld",
		"bus.partitions=0":                               "/bus/partitions",
		"bus.replicas=7":                                 "/bus/replicas",
		"masterKey=not-a-key":                            "/masterKey",
		"nats.auth.calloutSeed=SUBADSEED":                "/nats/auth/calloutSeed",
		"logLevel=verbose":                               "/logLevel",
		"services.controlplane.autoscaling.enabled=true": "autoscaling",
		"services.dedup.autoscaling.maxReplicas=0":       "/services/dedup/autoscaling/maxReplicas",
		"topologySpreadConstraints[0].maxSkew=0":         "maxSkew",
		"networkPolicy.nats.ports[0]=70000":              "/networkPolicy/nats/ports/0",
		"terminationGracePeriodSeconds=10":               "/terminationGracePeriodSeconds",
		"podDisruptionBudget.maxUnavailable=half":        "/podDisruptionBudget/maxUnavailable",
		"console.traceUrl=http://jaeger/trace/":          "/console/traceUrl",
		"database.url=mysql://syncline@db/syncline":      "/database/url",
		"otlpEndpoint=otel:4318":                         "/otlpEndpoint",
		"secretKeys.adminToken=admin token":              "/secretKeys/adminToken",
		"services.controlplane.databaseUrlKey=a key":     "/services/controlplane/databaseUrlKey",
		"metrics.podMonitor.interval=thirty":             "/metrics/podMonitor/interval",
		"image.pullPolicy=Sometimes":                     "/image/pullPolicy",
		"services.connector.resources.requests.cpu[0]=":  "/services/connector/resources/requests/cpu",
	} {
		_, err := render(t, append(base, "--set", set)...)
		if err == nil {
			t.Errorf("--set %s: rendered without an error", set)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("--set %s: the error does not name %q:\n%v", set, want, err)
		}
	}
	// The chart's own checks, past the schema.
	for set, want := range map[string]string{
		"database.url=":           "database.url is required",
		"nats.auth.user=syncline": "nats.auth.password is required",
		"nats.auth.callout=true":  "nats.auth.calloutSeed is required",
		"services.dedup.autoscaling.enabled=true,services.dedup.autoscaling.minReplicas=5": "minReplicas (5) is greater than maxReplicas (4)",
	} {
		_, err := render(t, append(base, "--set", set)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--set %s: want an error saying %q, got %v", set, want, err)
		}
	}
}

// neededVariables reads the services table of deploy/README.md: the
// SYNCLINE_* variables each service needs ("needs" column).
func neededVariables(t *testing.T) map[string][]string {
	t.Helper()
	needs := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?m)^\| (controlplane|mapper|dedup|connector|eventlog) \| [^|]+ \| ([^|]+) \|`).FindAllStringSubmatch(read(t, "README.md"), -1) {
		needs[m[1]] = regexp.MustCompile(`SYNCLINE_[A-Z_]+`).FindAllString(m[2], -1)
	}
	if len(needs) != 5 {
		t.Fatalf("read the needs of %d services from deploy/README.md's table, want 5: %v", len(needs), needs)
	}
	return needs
}

// recipe reads the existingSecret recipe in deploy/README.md: the
// Secret's name and the keys it creates.
func recipe(t *testing.T) (name string, keys []string) {
	t.Helper()
	readme := read(t, "README.md")
	i := strings.Index(readme, "create secret generic")
	if i < 0 {
		t.Fatal("deploy/README.md has no `kubectl create secret generic` recipe for existingSecret")
	}
	r := readme[i:]
	r = r[:strings.Index(r, "```")]
	name = strings.Fields(strings.TrimPrefix(r, "create secret generic"))[0]
	for _, m := range regexp.MustCompile(`--from-(?:literal|file)=([\w.-]+)=`).FindAllStringSubmatch(r, -1) {
		keys = append(keys, m[1])
	}
	return name, keys
}

// TestEveryPodCanStart: in every rendering, each service's pod gets every
// variable deploy/README.md says it needs (and, with NATS credentials, the
// user, password and callout seed), and every key it reads from a Secret
// is in that Secret: the chart's own, or one made by the README's recipe.
// A missing key keeps a pod from starting (CreateContainerConfigError).
func TestEveryPodCanStart(t *testing.T) {
	needs := neededVariables(t)
	recipeName, recipeKeys := recipe(t)
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := renderDecoded(t, c.args...)
			secrets := map[string][]string{}
			if c.existingSecret {
				secrets[recipeName] = recipeKeys
				if len(m["Secret"]) != 0 {
					t.Errorf("with existingSecret the chart still renders a Secret")
				}
			}
			for name, o := range m["Secret"] {
				for k := range o.(*corev1.Secret).Data {
					secrets[name] = append(secrets[name], k)
				}
			}
			nats := false
			for _, d := range deployments(m) {
				for _, e := range d.Spec.Template.Spec.Containers[0].Env {
					nats = nats || e.Name == "SYNCLINE_NATS_USER"
				}
			}
			for name, d := range deployments(m) {
				svc := component(d)
				env := map[string]corev1.EnvVar{}
				for _, e := range d.Spec.Template.Spec.Containers[0].Env {
					if _, dup := env[e.Name]; dup {
						t.Errorf("%s sets %s twice", name, e.Name)
					}
					env[e.Name] = e
				}
				want := append([]string{"SYNCLINE_NATS_URL"}, needs[svc]...)
				if nats {
					want = append(want, "SYNCLINE_NATS_USER", "SYNCLINE_NATS_PASSWORD")
					if svc == "controlplane" && strings.Contains(strings.Join(c.args, " "), "callout=true") {
						want = append(want, "SYNCLINE_NATS_CALLOUT_SEED")
					}
				}
				for _, v := range want {
					e, ok := env[v]
					switch {
					case !ok:
						t.Errorf("%s (%s) has no %s, which it needs", name, svc, v)
					case e.ValueFrom == nil && e.Value == "":
						t.Errorf("%s sets %s empty", name, v)
					}
				}
				for _, e := range env {
					ref := e.ValueFrom
					if ref == nil || ref.SecretKeyRef == nil {
						continue
					}
					keys, ok := secrets[ref.SecretKeyRef.Name]
					if !ok {
						t.Errorf("%s reads %s from the Secret %q, which is neither rendered nor the README's recipe (%q)", name, e.Name, ref.SecretKeyRef.Name, recipeName)
					} else if !slices.Contains(keys, ref.SecretKeyRef.Key) {
						t.Errorf("%s reads %s from the key %q of the Secret %q, which holds only %q", name, e.Name, ref.SecretKeyRef.Key, ref.SecretKeyRef.Name, keys)
					}
				}
			}
		})
	}
}

// TestEachServiceHasItsResources: every Deployment has its
// PodDisruptionBudget, its NetworkPolicy and its spread constraints, each
// selecting its pods and no other service's; a HorizontalPodAutoscaler
// scales a Deployment that leaves replicas to it; the PodMonitor selects
// every pod, on a port the pods have.
func TestEachServiceHasItsResources(t *testing.T) {
	for _, c := range cases(t) {
		t.Run(c.name, func(t *testing.T) {
			m := renderDecoded(t, c.args...)
			selects := func(sel *metav1.LabelSelector, d *appsv1.Deployment) bool {
				s, err := metav1.LabelSelectorAsSelector(sel)
				if err != nil {
					t.Fatalf("bad selector %v: %v", sel, err)
				}
				return !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels))
			}
			ds := deployments(m)
			for kind, sel := range map[string]func(o any) *metav1.LabelSelector{
				"PodDisruptionBudget": func(o any) *metav1.LabelSelector { return o.(*policyv1.PodDisruptionBudget).Spec.Selector },
				"NetworkPolicy":       func(o any) *metav1.LabelSelector { return &o.(*networkingv1.NetworkPolicy).Spec.PodSelector },
			} {
				if len(m[kind]) == 0 {
					continue
				}
				for dname, d := range ds {
					var by []string
					for name, o := range m[kind] {
						if selects(sel(o), d) {
							by = append(by, name)
						}
					}
					if len(by) != 1 {
						t.Errorf("%s's pods are selected by %d %ss (%q), want 1", dname, len(by), kind, by)
					}
				}
			}
			if len(m["NetworkPolicy"]) != 0 && len(m["NetworkPolicy"]) != len(ds) {
				t.Errorf("%d NetworkPolicies for %d Deployments", len(m["NetworkPolicy"]), len(ds))
			}
			for dname, d := range ds {
				if !selects(d.Spec.Selector, d) {
					t.Errorf("%s's selector does not select its own pods", dname)
				}
				for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
					if !selects(tsc.LabelSelector, d) {
						t.Errorf("%s spreads over %s by a selector that misses its own pods", dname, tsc.TopologyKey)
					}
					for other, o := range ds {
						if other != dname && selects(tsc.LabelSelector, o) {
							t.Errorf("%s spreads over %s together with %s's pods", dname, tsc.TopologyKey, other)
						}
					}
				}
			}
			scaled := map[string]bool{}
			for name, o := range m["HorizontalPodAutoscaler"] {
				h := o.(*autoscalingv2.HorizontalPodAutoscaler)
				d, ok := ds[h.Spec.ScaleTargetRef.Name]
				switch {
				case !ok || h.Spec.ScaleTargetRef.Kind != "Deployment":
					t.Errorf("HorizontalPodAutoscaler %s scales %s %s, which is not rendered", name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
				case d.Spec.Replicas != nil:
					t.Errorf("%s has replicas: %d under the HorizontalPodAutoscaler %s: each upgrade would reset its scale", d.Name, *d.Spec.Replicas, name)
				case !slices.Contains([]string{"connector", "mapper", "dedup", "eventlog"}, component(d)):
					t.Errorf("HorizontalPodAutoscaler %s scales %s, whose extra replicas are only standbys", name, component(d))
				}
				scaled[h.Spec.ScaleTargetRef.Name] = true
			}
			for name, d := range ds {
				if !scaled[name] && d.Spec.Replicas == nil {
					t.Errorf("%s has no replicas and no HorizontalPodAutoscaler", name)
				}
			}
			for name, o := range m["PodMonitor"] {
				pm := o.(*PodMonitor)
				for dname, d := range ds {
					if !selects(&pm.Spec.Selector, d) {
						t.Errorf("PodMonitor %s does not select %s's pods", name, dname)
					}
					for _, e := range pm.Spec.PodMetricsEndpoints {
						if !slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.Name == e.Port }) {
							t.Errorf("PodMonitor %s scrapes port %q, which %s's pods do not have", name, e.Port, dname)
						}
					}
				}
			}
		})
	}
}

// pod is one end of a connection in the NetworkPolicy model: a pod by its
// namespace and labels, and its named ports.
type pod struct {
	namespace string
	labels    map[string]string
	ports     map[string]int32
}

// peersMatch says whether a rule's peers take in p (policies live in
// policyNS). ipBlock peers are left out: the model knows pods, not their
// addresses.
func peersMatch(t *testing.T, peers []networkingv1.NetworkPolicyPeer, policyNS string, p pod) bool {
	if len(peers) == 0 {
		return true
	}
	matches := func(sel *metav1.LabelSelector, set map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("bad selector %v: %v", sel, err)
		}
		return s.Matches(labels.Set(set))
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			continue
		}
		nsOK := p.namespace == policyNS
		if peer.NamespaceSelector != nil {
			nsOK = matches(peer.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": p.namespace})
		}
		if nsOK && (peer.PodSelector == nil || matches(peer.PodSelector, p.labels)) {
			return true
		}
	}
	return false
}

// portsMatch says whether a rule's ports take in port/protocol on pod
// dest (a named port is the destination's).
func portsMatch(ports []networkingv1.NetworkPolicyPort, dest pod, port int32, protocol corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if proto != protocol {
			continue
		}
		if p.Port == nil {
			return true
		}
		n := p.Port.IntVal
		if p.Port.Type == intstr.String {
			n = dest.ports[p.Port.StrVal]
		}
		end := n
		if p.EndPort != nil {
			end = *p.EndPort
		}
		if n != 0 && n <= port && port <= end {
			return true
		}
	}
	return false
}

// allows says whether the policies let from connect to to on port: from's
// policies (egress) and to's (ingress), each side open while no policy
// selects it.
func allows(t *testing.T, policies []*networkingv1.NetworkPolicy, from, to pod, port int32, protocol corev1.Protocol) bool {
	out, in := true, true
	for _, np := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatal(err)
		}
		if np.Namespace == "" {
			np.Namespace = "syncline"
		}
		if from.namespace == np.Namespace && sel.Matches(labels.Set(from.labels)) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			if out {
				out = false
			}
			for _, r := range np.Spec.Egress {
				if peersMatch(t, r.To, np.Namespace, to) && portsMatch(r.Ports, to, port, protocol) {
					out = true
				}
			}
		}
		if to.namespace == np.Namespace && sel.Matches(labels.Set(to.labels)) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			if in {
				in = false
			}
			for _, r := range np.Spec.Ingress {
				if peersMatch(t, r.From, np.Namespace, from) && portsMatch(r.Ports, to, port, protocol) {
					in = true
				}
			}
		}
	}
	return out && in
}

// TestNetworkPoliciesAllowWhatEachServiceNeeds runs the connections the
// services make and take through the rendered NetworkPolicies of the
// production values: each service reaches DNS, NATS and the collector;
// the stores PostgreSQL; the control plane the eventlog's API; Prometheus
// and the ingress controller reach what they should. And nothing else: no
// other service reaches PostgreSQL or the eventlog, the ingress controller
// reaches no data-plane pod, and no service is reached by another
// namespace's pods.
func TestNetworkPoliciesAllowWhatEachServiceNeeds(t *testing.T) {
	m := renderDecoded(t, "-f", "helm/values-production.yaml")
	var policies []*networkingv1.NetworkPolicy
	for _, o := range m["NetworkPolicy"] {
		policies = append(policies, o.(*networkingv1.NetworkPolicy))
	}
	pods := map[string]pod{}
	for _, d := range deployments(m) {
		p := pod{namespace: "syncline", labels: d.Spec.Template.Labels, ports: map[string]int32{}}
		for _, cp := range d.Spec.Template.Spec.Containers[0].Ports {
			p.ports[cp.Name] = cp.ContainerPort
		}
		pods[component(d)] = p
	}
	nats := pod{namespace: "nats", labels: map[string]string{"app.kubernetes.io/name": "nats"}}
	natsBox := pod{namespace: "nats", labels: map[string]string{"app.kubernetes.io/name": "nats-box"}}
	postgres := pod{namespace: "db", labels: map[string]string{"app": "postgres"}}
	dns := pod{namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}}
	collector := pod{namespace: "observability", labels: map[string]string{"app": "otel-collector"}}
	prometheus := pod{namespace: "monitoring", labels: map[string]string{"app": "prometheus"}}
	ingress := pod{namespace: "ingress-nginx", labels: map[string]string{"app": "ingress-nginx"}}
	stranger := pod{namespace: "other", labels: map[string]string{"app": "other"}}
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP

	for name, p := range pods {
		store := slices.Contains([]string{"controlplane", "dedup", "eventlog"}, name)
		api := slices.Contains([]string{"controlplane", "connector", "eventlog"}, name)
		for _, want := range []struct {
			what       string
			from, to   pod
			port       int32
			proto      corev1.Protocol
			allowed    bool
			onlyIfWant bool
		}{
			{"DNS over UDP", p, dns, 53, udp, true, false},
			{"DNS over TCP", p, dns, 53, tcp, true, false},
			{"NATS", p, nats, 4222, tcp, true, false},
			{"NATS's monitoring port", p, nats, 8222, tcp, false, false},
			{"the OTLP collector", p, collector, 4318, tcp, true, false},
			{"PostgreSQL", p, postgres, 5432, tcp, store, false},
			{"the eventlog's API", p, pods["eventlog"], 8080, tcp, name == "controlplane", false},
			{"Prometheus scraping it", prometheus, p, 8080, tcp, true, false},
			{"the ingress controller calling it", ingress, p, 8080, tcp, api, false},
			{"a pod of another namespace calling it", stranger, p, 8080, tcp, false, false},
			{"a NATS client calling it", natsBox, p, 8080, tcp, false, false},
		} {
			if got := allows(t, policies, want.from, want.to, want.port, want.proto); got != want.allowed {
				t.Errorf("%s and %s: allowed %v, want %v", name, want.what, got, want.allowed)
			}
		}
		for other, o := range pods {
			if other == name || (name == "controlplane" && other == "eventlog") {
				continue
			}
			if allows(t, policies, p, o, 8080, tcp) {
				t.Errorf("%s reaches %s's port 8080, which it has no use for", name, other)
			}
		}
	}
}
