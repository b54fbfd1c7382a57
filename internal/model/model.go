package model

import (
	"cmp"
	"net/netip"
	"time"
)

// Meta is the part of object metadata that naming and selection use.
type Meta struct {
	Namespace string
	Name      string
	Labels    map[string]string
	Created   time.Time
}

// Key returns "namespace/name", the form used in logs and debug output.
func (m Meta) Key() string { return m.Namespace + "/" + m.Name }

// CompareAge orders objects oldest first (creationTimestamp), then by namespace and name, so
// that the order is total: when several objects name one host, the first in this order wins,
// as in Istio. Input order (file, document, or the API's namespace order) never decides.
func CompareAge(x, y *Meta) int {
	return cmp.Or(x.Created.Compare(y.Created), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
}

// Port is a named service port. Protocol is upper case as in the API ("TCP", "UDP", "HTTP").
type Port struct {
	Name     string
	Protocol string
	Number   uint16
}

// ServiceType mirrors v1.Service spec.type.
type ServiceType string

const (
	ServiceTypeClusterIP    ServiceType = "ClusterIP"
	ServiceTypeNodePort     ServiceType = "NodePort"
	ServiceTypeLoadBalancer ServiceType = "LoadBalancer"
	ServiceTypeExternalName ServiceType = "ExternalName"
)

// Service is a v1.Service.
type Service struct {
	Meta
	Type ServiceType
	// ClusterIPs holds every cluster IP (dual stack); empty when Headless.
	ClusterIPs []netip.Addr
	// Headless is true for clusterIP: None.
	Headless bool
	// ExternalName is the CNAME target of an ExternalName service, lowercase, no trailing dot.
	ExternalName    string
	Ports           []Port
	PublishNotReady bool
}

// ObjectRef points at the object behind an endpoint (normally a Pod).
type ObjectRef struct {
	Kind      string
	Namespace string
	Name      string
}

// Endpoint is one entry of an EndpointSlice.
type Endpoint struct {
	Addresses []netip.Addr
	// Ready is conditions.ready; an absent condition counts as ready, as the API documents.
	Ready     bool
	Hostname  string
	TargetRef *ObjectRef
}

// EndpointSlice is a discovery.k8s.io/v1 EndpointSlice.
type EndpointSlice struct {
	Meta
	// ServiceName comes from the kubernetes.io/service-name label.
	ServiceName string
	Endpoints   []Endpoint
	Ports       []Port
}

// Pod is a v1.Pod, reduced to what pod records and workload selection need.
type Pod struct {
	Meta
	IPs       []netip.Addr
	Hostname  string
	Subdomain string
}

// Namespace is a v1.Namespace; only its existence matters.
type Namespace struct {
	Name string
}

// Resolution is a ServiceEntry spec.resolution.
type Resolution string

const (
	ResolutionNone          Resolution = "NONE"
	ResolutionStatic        Resolution = "STATIC"
	ResolutionDNS           Resolution = "DNS"
	ResolutionDNSRoundRobin Resolution = "DNS_ROUND_ROBIN"
	ResolutionDynamicDNS    Resolution = "DYNAMIC_DNS"
)

// Location is a ServiceEntry spec.location.
type Location string

const (
	LocationExternal Location = "MESH_EXTERNAL"
	LocationInternal Location = "MESH_INTERNAL"
)

// WorkloadEndpoint is an inline ServiceEntry endpoint or the spec of a WorkloadEntry.
type WorkloadEndpoint struct {
	// Address is an IP, a host name (resolution DNS) or a unix socket path, as written.
	Address string
	Labels  map[string]string
	Ports   map[string]uint32
	Network string
}

// IP returns the endpoint address when it is an IP address.
func (e WorkloadEndpoint) IP() (netip.Addr, bool) {
	a, err := netip.ParseAddr(e.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// ServiceEntry is a networking.istio.io ServiceEntry (v1, v1beta1 and v1alpha3 share the shape).
type ServiceEntry struct {
	Meta
	// Hosts are lowercase, without trailing dot; a wildcard host starts with "*.".
	Hosts []string
	// Addresses holds spec.addresses; a single IP is a full-length prefix.
	Addresses        []netip.Prefix
	Ports            []Port
	Location         Location
	Resolution       Resolution
	Endpoints        []WorkloadEndpoint
	WorkloadSelector map[string]string
	// ExportTo is spec.exportTo: "." (own namespace), "*" (all) or namespace names; empty means all.
	ExportTo []string
	// StatusAddresses are VIPs already allocated and recorded in status.addresses.
	StatusAddresses []HostAddress
}

// HostAddress is one entry of ServiceEntry status.addresses.
type HostAddress struct {
	Host    string
	Address netip.Addr
}

// Selects reports whether a workload selector matches: every selector label is present in one
// of the label sets (a WorkloadEntry carries labels both in metadata and in spec).
func Selects(selector map[string]string, labelSets ...map[string]string) bool {
	for k, v := range selector {
		found := false
		for _, ls := range labelSets {
			if got, ok := ls[k]; ok && got == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// WorkloadEntry is a networking.istio.io WorkloadEntry.
type WorkloadEntry struct {
	Meta
	WorkloadEndpoint
}

// Snapshot is everything the sources know at one moment. The table builder only reads it.
type Snapshot struct {
	Services        []Service
	EndpointSlices  []EndpointSlice
	Pods            []Pod
	Namespaces      []Namespace
	ServiceEntries  []ServiceEntry
	WorkloadEntries []WorkloadEntry
}

// Append adds every object of o to s, for merging the snapshots of several sources.
func (s *Snapshot) Append(o Snapshot) {
	s.Services = append(s.Services, o.Services...)
	s.EndpointSlices = append(s.EndpointSlices, o.EndpointSlices...)
	s.Pods = append(s.Pods, o.Pods...)
	s.Namespaces = append(s.Namespaces, o.Namespaces...)
	s.ServiceEntries = append(s.ServiceEntries, o.ServiceEntries...)
	s.WorkloadEntries = append(s.WorkloadEntries, o.WorkloadEntries...)
}

// Add appends obj, a Service, EndpointSlice, Pod, Namespace, ServiceEntry or WorkloadEntry, to
// the list of its kind; it reports false for anything else.
func (s *Snapshot) Add(obj any) bool {
	switch v := obj.(type) {
	case Service:
		s.Services = append(s.Services, v)
	case EndpointSlice:
		s.EndpointSlices = append(s.EndpointSlices, v)
	case Pod:
		s.Pods = append(s.Pods, v)
	case Namespace:
		s.Namespaces = append(s.Namespaces, v)
	case ServiceEntry:
		s.ServiceEntries = append(s.ServiceEntries, v)
	case WorkloadEntry:
		s.WorkloadEntries = append(s.WorkloadEntries, v)
	default:
		return false
	}
	return true
}
