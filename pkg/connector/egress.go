package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// The settings an operator allows more with, named in every refusal so that the message says
// what would allow it.
const (
	EnvEgressAllow   = "SYNCLINE_EGRESS_ALLOW"
	EnvEgressFiles   = "SYNCLINE_EGRESS_FILES"
	EnvEgressProtect = "SYNCLINE_EGRESS_PROTECT"
	tenantAllowPath  = "spec.egress.allow"
)

// Public is the rule that allows every public address (globally routable unicast: no
// loopback, private, link-local, shared or documentation range, no cloud metadata) on any
// port. It is the platform's rule when the operator sets none.
const Public = "public"

// None is the rule list that allows nothing, for an operator who allows hosts per tenant only.
const None = "none"

// EgressConfig is the platform's egress policy: what every tenant's endpoints may reach.
type EgressConfig struct {
	// Allow are the platform's rules, each one of: "public"; an address or a CIDR range with
	// an optional port ("10.0.0.5", "10.0.0.0/8:5432", "[fd00::/8]:5432"); a host name with an
	// optional port, or a wildcard for its subdomains ("erp.example.com:5432",
	// "*.example.com"). A name allows whatever it resolves to, but Syncline's own servers and
	// link-local addresses (cloud metadata); a range allows only itself. Nil means
	// []string{Public}; "none" alone allows nothing.
	Allow []string
	// Files is the folder that holds one folder per tenant (Files/<tenant>), where the
	// tenant's file-backed endpoints (SQLite files) live. Empty refuses them, unless the
	// tenant's own policy names a folder.
	Files string
	// Protected are Syncline's own servers and files: never reachable, whatever allows them.
	Protected []Protected
	// Resolver looks names up; nil is net.DefaultResolver.
	Resolver Resolver
}

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Protected is one of Syncline's own servers or files.
type Protected struct {
	// What it is, for messages: "Syncline's own database".
	What string
	// Host and Port of a server; Host may be a name. Every address of the host counts, and
	// for a host of this machine (loopback, 0.0.0.0 or an address of its interfaces) every
	// address of the machine does.
	Host string
	Port int
	// Database narrows a server to one database on it: a destination that names another
	// database passes, one that names none (a connector that speaks no database protocol)
	// does not.
	Database string
	// Path is a file or a folder (with everything in it).
	Path string
}

// TenantEgress is one tenant's own policy, which the platform operator sets (the Tenant's
// spec.egress): rules allowed for this tenant on top of the platform's, and the folder its
// file-backed endpoints use instead of Files/<tenant>.
type TenantEgress struct {
	Allow  []string `json:"allow,omitempty"`
	Folder string   `json:"folder,omitempty"`
}

// Egress decides what an endpoint may reach. The control plane checks an endpoint with it when
// it is applied; the connector checks again when it opens the target and, through Dialer,
// at every connection, against the address the connection is made to, so that a name that
// resolves elsewhere later (DNS rebinding) gains nothing.
type Egress struct {
	allow     []rule
	files     string
	protected []protectedServer
	paths     []protectedPath
	resolver  Resolver
	local     []netip.Addr
	tenants   func(tenant string) TenantEgress
}

type rule struct {
	public bool
	prefix netip.Prefix // valid for address and range rules
	name   string       // lower-case; "*.example.com" for a wildcard
	port   int          // 0: any
}

type protectedServer struct {
	Protected
	addr netip.Addr // valid when Host is an address
}

type protectedPath struct {
	what, path string
}

// NewEgress checks cfg and returns its policy. No tenant has rules of its own until
// WithTenants says which.
func NewEgress(cfg EgressConfig) (*Egress, error) {
	e := &Egress{resolver: cfg.Resolver, tenants: func(string) TenantEgress { return TenantEgress{} }}
	if e.resolver == nil {
		e.resolver = net.DefaultResolver
	}
	allow := cfg.Allow
	if allow == nil {
		allow = []string{Public}
	}
	if len(allow) == 1 && allow[0] == None {
		allow = nil
	}
	for _, s := range allow {
		r, err := parseRule(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvEgressAllow, err)
		}
		e.allow = append(e.allow, r)
	}
	if cfg.Files != "" {
		abs, err := filepath.Abs(cfg.Files)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvEgressFiles, err)
		}
		e.files = abs
	}
	for _, p := range cfg.Protected {
		if p.Path != "" {
			abs, err := filepath.Abs(p.Path)
			if err != nil {
				return nil, fmt.Errorf("protecting %s: %w", p.What, err)
			}
			e.paths = append(e.paths, protectedPath{what: p.What, path: abs})
			continue
		}
		if p.Host == "" || p.Port <= 0 || p.Port > 65535 {
			return nil, fmt.Errorf("protecting %s: give a host and a port", p.What)
		}
		ps := protectedServer{Protected: p}
		if a, err := netip.ParseAddr(strings.Trim(p.Host, "[]")); err == nil {
			ps.addr = a.Unmap()
		}
		e.protected = append(e.protected, ps)
	}
	// The machine's own addresses: a server listening on all of them is reached on any.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				e.local = append(e.local, p.Addr().Unmap())
			}
		}
	}
	return e, nil
}

// CheckEgressRule says what is wrong with one rule of an allow list (see EgressConfig.Allow).
func CheckEgressRule(s string) error {
	_, err := parseRule(s)
	return err
}

func parseRule(s string) (rule, error) {
	s = strings.TrimSpace(s)
	bad := func(why string) (rule, error) {
		return rule{}, fmt.Errorf("rule %q %s; write public, an address or CIDR range with an optional :port (10.0.0.0/8:5432, [fd00::/8]:5432), or a host name with an optional :port (erp.example.com:5432, *.example.com)", s, why)
	}
	if s == "" {
		return bad("is empty")
	}
	if s == Public {
		return rule{public: true}, nil
	}
	host, port := s, 0
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("has a port that is not 1 to 65535")
		}
		host, port = h, n
	} else if strings.HasPrefix(s, "[") {
		host = strings.Trim(s, "[]")
	}
	if p, err := netip.ParsePrefix(host); err == nil {
		return rule{prefix: p.Masked(), port: port}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		return rule{prefix: netip.PrefixFrom(a, a.BitLen()), port: port}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	check := strings.TrimPrefix(name, "*.")
	if check == "" || strings.ContainsAny(check, "*/[]: ") {
		return bad("is not an address, a range or a host name")
	}
	return rule{name: name, port: port}, nil
}

// WithTenants returns the policy with each tenant's own rules and folder read from tenants,
// which is called at every check, so a change to a tenant applies to its next connection.
func (e *Egress) WithTenants(tenants func(tenant string) TenantEgress) *Egress {
	c := *e
	c.tenants = tenants
	return &c
}

// CheckAddr says whether tenant's endpoints may connect to host:port: it refuses Syncline's own
// servers always, and anything no rule of the platform or the tenant allows. ctx bounds the
// name lookup.
func (e *Egress) CheckAddr(ctx context.Context, tenant, host string, port int) error {
	_, err := e.resolve(ctx, tenant, host, port, "")
	return err
}

// CheckDatabase is CheckAddr for a connection that opens one database on the server, so that
// a tenant's database on the server that also holds Syncline's own passes, and Syncline's own
// does not.
func (e *Egress) CheckDatabase(ctx context.Context, tenant, host string, port int, database string) error {
	_, err := e.resolve(ctx, tenant, host, port, database)
	return err
}

// resolve returns the addresses of host that tenant may connect to on port, or why none.
func (e *Egress) resolve(ctx context.Context, tenant, host string, port int, database string) ([]netip.Addr, error) {
	if strings.HasPrefix(host, "/") || strings.HasPrefix(host, "@") {
		return nil, fmt.Errorf("unix socket %s: endpoints reach network hosts only", host)
	}
	if host == "" {
		return nil, errors.New("no host given")
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("host %s: port %d is not 1 to 65535", host, port)
	}
	rules, err := e.rules(tenant)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	named := false
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		named = nameAllowed(rules, host, port)
		ips, err := e.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("looking up host %s: %w", host, err)
		}
		for _, a := range ips {
			addrs = append(addrs, a.Unmap())
		}
	}
	var allowed []netip.Addr
	var refusal error
	for _, a := range addrs {
		if err := e.checkIP(ctx, rules, host, a, port, database, named); err != nil {
			if errors.Is(err, errProtected) {
				return nil, err
			}
			if refusal == nil {
				refusal = err
			}
			continue
		}
		allowed = append(allowed, a)
	}
	if len(allowed) == 0 {
		if refusal == nil {
			refusal = fmt.Errorf("host %s has no address", host)
		}
		return nil, refusal
	}
	return allowed, nil
}

// errProtected marks a refusal that no rule can lift.
var errProtected = errors.New("protected")

type protectedError struct{ msg string }

func (e *protectedError) Error() string        { return e.msg }
func (e *protectedError) Is(target error) bool { return target == errProtected }

// checkIP decides one address: Syncline's own servers never; then what a rule allows.
func (e *Egress) checkIP(ctx context.Context, rules []rule, host string, a netip.Addr, port int, database string, named bool) error {
	shown := hostPort(host, port)
	if host != a.String() && strings.Trim(host, "[]") != a.String() {
		shown += " (" + a.String() + ")"
	}
	for _, p := range e.protected {
		if p.Port != port || (p.Database != "" && database != "" && p.Database != database) {
			continue
		}
		same, err := e.sameHost(ctx, p, a)
		if err != nil {
			// A protected host that cannot be looked up cannot be told apart: refuse every
			// address on its port rather than let it through.
			return &protectedError{msg: fmt.Sprintf("host %s cannot be told apart from %s on port %d now (%v); try again later", shown, p.What, p.Port, err)}
		}
		if same {
			return &protectedError{msg: fmt.Sprintf("host %s is %s; endpoints may never point at it", shown, p.What)}
		}
	}
	kind := addrKind(a)
	if named && kind != "link-local" && kind != "cloud metadata" {
		return nil
	}
	for _, r := range rules {
		if r.port != 0 && r.port != port {
			continue
		}
		switch {
		case r.public && kind == "":
			return nil
		case r.prefix.IsValid() && r.prefix.Contains(a):
			return nil
		}
	}
	what := ""
	if kind != "" {
		what = " (a " + kind + " address)"
	}
	return fmt.Errorf("host %s%s is not in the egress policy; the platform operator allows it with %s or the tenant's %s", shown, what, EnvEgressAllow, tenantAllowPath)
}

// sameHost says whether a is an address of the protected server's host.
func (e *Egress) sameHost(ctx context.Context, p protectedServer, a netip.Addr) (bool, error) {
	addrs := []netip.Addr{p.addr}
	if !p.addr.IsValid() {
		ips, err := e.resolver.LookupNetIP(ctx, "ip", p.Host)
		if err != nil {
			return false, fmt.Errorf("looking up %s: %w", p.Host, err)
		}
		addrs = addrs[:0]
		for _, ip := range ips {
			addrs = append(addrs, ip.Unmap())
		}
	}
	for _, pa := range addrs {
		if pa == a || (e.isLocal(pa) && e.isLocal(a)) {
			return true, nil
		}
	}
	return false, nil
}

// isLocal says whether a reaches this machine: loopback, unspecified (0.0.0.0 and :: connect
// to the machine itself) or an address of one of its interfaces.
func (e *Egress) isLocal(a netip.Addr) bool {
	return a.IsLoopback() || a.IsUnspecified() || slices.Contains(e.local, a)
}

// rules are the platform's rules and the tenant's.
func (e *Egress) rules(tenant string) ([]rule, error) {
	own := e.tenants(tenant).Allow
	if len(own) == 0 {
		return e.allow, nil
	}
	rules := slices.Clone(e.allow)
	for _, s := range own {
		r, err := parseRule(s)
		if err != nil {
			return nil, fmt.Errorf("tenant %s's %s: %w", tenant, tenantAllowPath, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func nameAllowed(rules []rule, host string, port int) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, r := range rules {
		if r.name == "" || (r.port != 0 && r.port != port) {
			continue
		}
		if r.name == host || (strings.HasPrefix(r.name, "*.") && strings.HasSuffix(host, r.name[1:])) {
			return true
		}
	}
	return false
}

var (
	metadataV6 = netip.MustParseAddr("fd00:ec2::254")
	// Ranges that are not public but that net/netip has no predicate for.
	special = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier NAT, some clouds' metadata)
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("64:ff9b::/96"), // NAT64: an IPv4 address inside, private ones too
		netip.MustParsePrefix("64:ff9b:1::/48"),
		netip.MustParsePrefix("2002::/16"), // 6to4: the same
		netip.MustParsePrefix("2001:db8::/32"),
	}
)

// addrKind names what is not public about an address, or "" for a public one.
func addrKind(a netip.Addr) string {
	switch {
	case a == netip.MustParseAddr("169.254.169.254") || a == metadataV6:
		return "cloud metadata"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "multicast"
	case a.IsPrivate():
		return "private"
	}
	for _, p := range special {
		if p.Contains(a) {
			return "reserved"
		}
	}
	if !a.IsGlobalUnicast() {
		return "reserved"
	}
	return ""
}

func hostPort(host string, port int) string {
	return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
}

// Folder is the folder of tenant's file-backed endpoints: its own policy's, or Files/<tenant>.
func (e *Egress) Folder(tenant string) (string, error) {
	if f := e.tenants(tenant).Folder; f != "" {
		if !filepath.IsAbs(f) {
			return "", fmt.Errorf("tenant %s's spec.egress.folder %q is not an absolute path", tenant, f)
		}
		return filepath.Clean(f), nil
	}
	if e.files == "" {
		return "", fmt.Errorf("file-backed endpoints are off: the platform operator turns them on with %s (a folder that holds one folder per tenant) or gives the tenant a folder with spec.egress.folder", EnvEgressFiles)
	}
	if tenant == "" || strings.ContainsAny(tenant, `/\`) || tenant == "." || tenant == ".." {
		return "", fmt.Errorf("tenant %q cannot name a folder", tenant)
	}
	return filepath.Join(e.files, tenant), nil
}

// CheckPath says whether tenant's endpoints may use the file at path; see ResolvePath.
func (e *Egress) CheckPath(tenant, path string) error {
	_, err := e.ResolvePath(tenant, path)
	return err
}

// ResolvePath returns the absolute path of the file at path for tenant's endpoint: a relative
// path is in the tenant's folder, an absolute one must be in it. It refuses Syncline's own
// files, a path with "..", and one that leaves the folder through a symbolic link.
func (e *Egress) ResolvePath(tenant, path string) (string, error) {
	if path == "" {
		return "", errors.New("no file given")
	}
	folder, err := e.Folder(tenant)
	if err != nil {
		return "", err
	}
	abs := path
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(folder, abs)
	}
	abs = filepath.Clean(abs)
	if err := e.checkProtected(path, abs); err != nil {
		return "", err
	}
	if slices.Contains(strings.Split(filepath.ToSlash(path), "/"), "..") {
		return "", fmt.Errorf("file %s has a \"..\": give a path in the tenant's folder (a relative path is in it)", path)
	}
	if !within(folder, abs) {
		return "", fmt.Errorf("file %s is outside the tenant's folder; give a relative path, which is in it, or ask the platform operator for the tenant's spec.egress.folder", path)
	}
	// Symbolic links: what the deepest existing part of the path really is must still be in
	// the folder, as the folder really is.
	realFolder := realPath(folder)
	real := realPath(abs)
	if !within(realFolder, real) {
		return "", fmt.Errorf("file %s leads out of the tenant's folder through a symbolic link", path)
	}
	if err := e.checkProtected(path, real); err != nil {
		return "", err
	}
	return abs, nil
}

// checkProtected refuses Syncline's own files and folders, by name and by identity (a hard
// link or another spelling of the same file).
func (e *Egress) checkProtected(given, abs string) error {
	info, statErr := os.Stat(abs)
	for _, p := range e.paths {
		same := abs == p.path || within(p.path, abs)
		if !same && statErr == nil {
			if pi, err := os.Stat(p.path); err == nil && os.SameFile(info, pi) {
				same = true
			}
		}
		if same {
			return &protectedError{msg: fmt.Sprintf("file %s is %s; endpoints may never point at it", given, p.what)}
		}
	}
	return nil
}

// within says whether path is folder or in it; both are clean and absolute.
func within(folder, path string) bool {
	rel, err := filepath.Rel(folder, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// realPath resolves the symbolic links of the deepest part of path that exists, and keeps the
// rest as it is.
func realPath(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if filepath.Dir(p) == p {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// Dialer connects for one tenant's endpoint under the policy.
type Dialer struct {
	e        *Egress
	tenant   string
	database string
}

// Dialer returns a dialer for tenant's endpoint; database is the database the connections
// open, or "" for a protocol without one. Use its DialContext as a driver's or an HTTP
// transport's dial function.
func (e *Egress) Dialer(tenant, database string) *Dialer {
	return &Dialer{e: e, tenant: tenant, database: database}
}

// DialContext connects to addr (host:port) over TCP: it looks the host up itself, drops the
// addresses the policy refuses, and checks once more, at connect time, the very address each
// connection is made to.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("connecting to %s over %s: endpoints reach network hosts over TCP only", addr, network)
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: the port is not a number", addr)
	}
	addrs, err := d.e.resolve(ctx, d.tenant, host, port, d.database)
	if err != nil {
		return nil, err
	}
	rules, err := d.e.rules(d.tenant)
	if err != nil {
		return nil, err
	}
	_, notAddr := netip.ParseAddr(strings.Trim(host, "[]"))
	named := notAddr != nil && nameAllowed(rules, host, port)
	var errs []error
	for _, a := range addrs {
		nd := net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("connecting to %s: %w", address, err)
			}
			return d.e.checkIP(ctx, rules, host, ap.Addr().Unmap(), int(ap.Port()), d.database, named)
		}}
		c, err := nd.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
