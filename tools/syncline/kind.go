package main

import (
	"fmt"
	"strings"
)

// Kinds as the API names them.
const (
	kindTenant     = "Tenant"
	kindIntegrator = "Integrator"
	kindEndpoint   = "Endpoint"
	kindFlow       = "Flow"
)

var kindAliases = map[string]string{
	"tenant": kindTenant, "tenants": kindTenant,
	"integrator": kindIntegrator, "integrators": kindIntegrator,
	"endpoint": kindEndpoint, "endpoints": kindEndpoint,
	"flow": kindFlow, "flows": kindFlow,
}

// parseKind reads a kind as people type it: any case, singular or plural.
func parseKind(s string) (string, error) {
	kind, ok := kindAliases[strings.ToLower(s)]
	if !ok {
		return "", fmt.Errorf("kind %q: use tenant, integrator, endpoint or flow (or their plurals)", s)
	}
	return kind, nil
}

// resourceName names a resource as the CLI prints it: "acme" for a tenant,
// "acme/orders" for anything of a tenant, "orders" when the tenant is left
// to an integrator token.
func resourceName(kind, tenant, name string) string {
	if kind == kindTenant || tenant == "" {
		return name
	}
	return tenant + "/" + name
}
