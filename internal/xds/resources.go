package xds

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/meshdns/meshdns/api/meshdns/v1"
	"github.com/meshdns/meshdns/internal/model"
)

// The resource types, one per message of api/meshdns/v1.
const (
	typePrefix             = "type.googleapis.com/meshdns.v1."
	TypeNamespace          = typePrefix + "Namespace"
	TypeService            = typePrefix + "Service"
	TypeEndpointSlice      = typePrefix + "EndpointSlice"
	TypePod                = typePrefix + "Pod"
	TypeWorkloadEntry      = typePrefix + "WorkloadEntry"
	TypeServiceEntry       = typePrefix + "ServiceEntry"
	TypeScopedServiceEntry = typePrefix + "ScopedServiceEntry"
)

// Types are every resource type an agent subscribes to.
var Types = []string{TypeNamespace, TypeService, TypeEndpointSlice, TypePod, TypeWorkloadEntry,
	TypeServiceEntry, TypeScopedServiceEntry}

// Set is resources by name.
type Set map[string]proto.Message

// AllNamespaces is the namespace a node agent asks for: the view of every namespace, all
// scoped ServiceEntries included (it applies exportTo itself, per pod). Not a namespace name.
const AllNamespaces = "*"

// Resources are the resources of one snapshot: those every agent receives, by type, and the
// ServiceEntries exported to some namespaces only, by the namespace that may see them.
type Resources struct {
	Shared map[string]Set
	// Scoped holds TypeScopedServiceEntry resources by client namespace.
	Scoped map[string]Set
}

// Name is the resource name of an object: "namespace/name".
func Name(m model.Meta) string { return m.Namespace + "/" + m.Name }

// Split turns a snapshot into resources. It leaves out what cannot change a name: pods
// without a hostname and subdomain that no ServiceEntry's workloadSelector matches (a node of
// a large cluster has thousands). A ServiceEntry exported to every namespace is shared; one
// exported to some namespaces goes to each of them alone, so an agent never receives a name
// its namespace may not see.
func Split(snap model.Snapshot) Resources {
	r := Resources{Shared: map[string]Set{}, Scoped: map[string]Set{}}
	for _, t := range Types {
		if t != TypeScopedServiceEntry {
			r.Shared[t] = Set{}
		}
	}
	for _, ns := range snap.Namespaces {
		r.Shared[TypeNamespace][ns.Name] = &pb.Namespace{Name: ns.Name}
	}
	for i := range snap.Services {
		s := &snap.Services[i]
		r.Shared[TypeService][Name(s.Meta)] = ServicePB(s)
	}
	for i := range snap.EndpointSlices {
		s := &snap.EndpointSlices[i]
		r.Shared[TypeEndpointSlice][Name(s.Meta)] = EndpointSlicePB(s)
	}
	for i := range snap.WorkloadEntries {
		we := &snap.WorkloadEntries[i]
		r.Shared[TypeWorkloadEntry][Name(we.Meta)] = WorkloadEntryPB(we)
	}
	selectors := map[string][]map[string]string{} // by namespace
	for i := range snap.ServiceEntries {
		se := &snap.ServiceEntries[i]
		if len(se.WorkloadSelector) > 0 {
			selectors[se.Namespace] = append(selectors[se.Namespace], se.WorkloadSelector)
		}
		m := ServiceEntryPB(se)
		audience := Audience(se)
		if audience == nil {
			r.Shared[TypeServiceEntry][Name(se.Meta)] = m
			continue
		}
		scoped := &pb.ScopedServiceEntry{ServiceEntry: m}
		for _, ns := range append(audience, AllNamespaces) {
			if r.Scoped[ns] == nil {
				r.Scoped[ns] = Set{}
			}
			r.Scoped[ns][Name(se.Meta)] = scoped
		}
	}
	for i := range snap.Pods {
		p := &snap.Pods[i]
		if (p.Hostname != "" && p.Subdomain != "") || slices.ContainsFunc(selectors[p.Namespace],
			func(sel map[string]string) bool { return model.Selects(sel, p.Labels) }) {
			r.Shared[TypePod][Name(p.Meta)] = PodPB(p)
		}
	}
	return r
}

// Audience lists the namespaces that may see a ServiceEntry; nil means every namespace. It
// reads exportTo as the table does (table.Node.Visible): "*" or nothing is everyone, "." the
// entry's own namespace, any other value a namespace name ("~", Istio's "nobody", names no
// namespace and so reaches none).
func Audience(se *model.ServiceEntry) []string {
	if len(se.ExportTo) == 0 || slices.Contains(se.ExportTo, "*") {
		return nil
	}
	out := make([]string, 0, len(se.ExportTo))
	for _, e := range se.ExportTo {
		if e == "." {
			e = se.Namespace
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// Decode parses a resource of type typeURL into the model object it carries: a
// model.Namespace, Service, EndpointSlice, Pod, WorkloadEntry or ServiceEntry.
func Decode(typeURL string, value []byte) (any, error) {
	obj, err := decode(typeURL, value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.TrimPrefix(typeURL, typePrefix), err)
	}
	return obj, nil
}

func decode(typeURL string, value []byte) (any, error) {
	switch typeURL {
	case TypeNamespace:
		var m pb.Namespace
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		return model.Namespace{Name: m.GetName()}, nil
	case TypeService:
		var m pb.Service
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		return ServiceModel(&m)
	case TypeEndpointSlice:
		var m pb.EndpointSlice
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		return EndpointSliceModel(&m)
	case TypePod:
		var m pb.Pod
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		return PodModel(&m)
	case TypeWorkloadEntry:
		var m pb.WorkloadEntry
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		return WorkloadEntryModel(&m), nil
	case TypeServiceEntry:
		var m pb.ServiceEntry
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		return ServiceEntryModel(&m)
	case TypeScopedServiceEntry:
		var m pb.ScopedServiceEntry
		if err := proto.Unmarshal(value, &m); err != nil {
			return nil, err
		}
		if m.GetServiceEntry() == nil {
			return nil, fmt.Errorf("no service_entry")
		}
		return ServiceEntryModel(m.GetServiceEntry())
	}
	return nil, fmt.Errorf("unknown resource type")
}

// CompareNames orders resource names ("namespace/name", or a Namespace's name) by namespace,
// then name: the order of the Kubernetes source's snapshot. The table's answers list
// addresses in snapshot order, so an agent's must be the same.
func CompareNames(a, b string) int {
	ans, aname := splitName(a)
	bns, bname := splitName(b)
	return cmp.Or(cmp.Compare(ans, bns), cmp.Compare(aname, bname))
}

func splitName(s string) (namespace, name string) {
	if namespace, name, ok := strings.Cut(s, "/"); ok {
		return namespace, name
	}
	return "", s
}

// Encoded is a resource's type and encoding, as an agent holds it.
type Encoded struct {
	TypeURL string
	Value   []byte
}

// SnapshotOf decodes resources into a snapshot, each kind in the order given but
// ServiceEntries, whose shared and scoped resources are merged into one order by namespace and
// name. A resource that does not decode is left out, and the first error returned.
func SnapshotOf(res []Encoded) (model.Snapshot, error) {
	var snap model.Snapshot
	var first error
	for _, r := range res {
		obj, err := Decode(r.TypeURL, r.Value)
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		snap.Add(obj)
	}
	slices.SortStableFunc(snap.ServiceEntries, func(a, b model.ServiceEntry) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return snap, first
}

// ShortType is a resource type without its prefix ("Service"), for labels and logs.
func ShortType(typeURL string) string { return strings.TrimPrefix(typeURL, typePrefix) }
