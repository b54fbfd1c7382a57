package manifest

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/model"
)

// workloadSpec is a ServiceEntry endpoint and the spec of a WorkloadEntry.
type workloadSpec struct {
	Address string            `yaml:"address"`
	Labels  map[string]string `yaml:"labels"`
	Ports   map[string]int    `yaml:"ports"`
	Network string            `yaml:"network"`
}

// toModel checks ports and, for STATIC resolution, that the address is an IP or a socket.
func (w workloadSpec) toModel(base fieldPath, static bool) (model.WorkloadEndpoint, error) {
	ep := model.WorkloadEndpoint{Address: w.Address, Labels: w.Labels, Network: w.Network}
	if w.Address == "" && w.Network == "" {
		// Istio allows an empty address only for endpoints reached through a network gateway.
		return ep, required(base.with("address"))
	}
	if _, isIP := ep.IP(); static && w.Address != "" && !isIP && !strings.HasPrefix(w.Address, "unix://") {
		return ep, invalid(base.with("address"), w.Address, "resolution STATIC needs an IP address or unix:// path")
	}
	if len(w.Ports) > 0 {
		ep.Ports = make(map[string]uint32, len(w.Ports))
	}
	// Sorted, so that the first bad port reported is the same on every run.
	for _, name := range slices.Sorted(maps.Keys(w.Ports)) {
		num, err := portNumber(base.with("ports", name), w.Ports[name])
		if err != nil {
			return ep, err
		}
		ep.Ports[name] = uint32(num)
	}
	return ep, nil
}

type serviceEntryObj struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Hosts     []string `yaml:"hosts"`
		Addresses []string `yaml:"addresses"`
		Ports     []struct {
			Number   int    `yaml:"number"`
			Name     string `yaml:"name"`
			Protocol string `yaml:"protocol"`
		} `yaml:"ports"`
		Location         string         `yaml:"location"`
		Resolution       string         `yaml:"resolution"`
		Endpoints        []workloadSpec `yaml:"endpoints"`
		WorkloadSelector *struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"workloadSelector"`
		ExportTo []string `yaml:"exportTo"`
	} `yaml:"spec"`
	Status struct {
		Addresses []struct {
			Value string `yaml:"value"`
			Host  string `yaml:"host"`
		} `yaml:"addresses"`
	} `yaml:"status"`
}

func (o *serviceEntryObj) toModel() (model.ServiceEntry, error) {
	meta, err := o.Metadata.toModel(isDNSSubdomain)
	if err != nil {
		return model.ServiceEntry{}, err
	}
	se := model.ServiceEntry{Meta: meta, ExportTo: o.Spec.ExportTo, StatusAddresses: o.statusAddresses()}
	if o.Spec.WorkloadSelector != nil {
		se.WorkloadSelector = o.Spec.WorkloadSelector.Labels
	}
	steps := []func(*model.ServiceEntry) error{o.hosts, o.addresses, o.ports, o.enums, o.endpoints}
	for _, step := range steps {
		if err := step(&se); err != nil {
			return model.ServiceEntry{}, err
		}
	}
	return se, nil
}

func (o *serviceEntryObj) hosts(se *model.ServiceEntry) error {
	if len(o.Spec.Hosts) == 0 {
		return required(fieldPath{"spec", "hosts"})
	}
	for i, h := range o.Spec.Hosts {
		host, err := dnsname.ParseHost(h, true)
		if err != nil {
			return invalid(fieldPath{"spec", "hosts", i}, h, "not a valid host name: "+err.Error())
		}
		se.Hosts = append(se.Hosts, host)
	}
	return nil
}

func (o *serviceEntryObj) addresses(se *model.ServiceEntry) error {
	for i, s := range o.Spec.Addresses {
		pfx, err := parsePrefix(fieldPath{"spec", "addresses", i}, s)
		if err != nil {
			return err
		}
		se.Addresses = append(se.Addresses, pfx)
	}
	return nil
}

func (o *serviceEntryObj) ports(se *model.ServiceEntry) error {
	for i, sp := range o.Spec.Ports {
		num, err := portNumber(fieldPath{"spec", "ports", i, "number"}, sp.Number)
		if err != nil {
			return err
		}
		se.Ports = append(se.Ports, model.Port{Name: sp.Name, Protocol: strings.ToUpper(sp.Protocol), Number: num})
	}
	return nil
}

// enums applies Istio's defaults: location MESH_EXTERNAL and resolution NONE (enum zero values).
func (o *serviceEntryObj) enums(se *model.ServiceEntry) error {
	se.Location = model.Location(o.Spec.Location)
	switch se.Location {
	case "":
		se.Location = model.LocationExternal
	case model.LocationExternal, model.LocationInternal:
	default:
		return invalid(fieldPath{"spec", "location"}, o.Spec.Location, "want MESH_EXTERNAL or MESH_INTERNAL")
	}
	se.Resolution = model.Resolution(o.Spec.Resolution)
	switch se.Resolution {
	case "":
		se.Resolution = model.ResolutionNone
	case model.ResolutionNone, model.ResolutionStatic, model.ResolutionDNS,
		model.ResolutionDNSRoundRobin, model.ResolutionDynamicDNS:
	default:
		return invalid(fieldPath{"spec", "resolution"}, o.Spec.Resolution,
			"want NONE, STATIC, DNS, DNS_ROUND_ROBIN or DYNAMIC_DNS")
	}
	return nil
}

func (o *serviceEntryObj) endpoints(se *model.ServiceEntry) error {
	static := se.Resolution == model.ResolutionStatic
	for i, w := range o.Spec.Endpoints {
		ep, err := w.toModel(fieldPath{"spec", "endpoints", i}, static)
		if err != nil {
			return err
		}
		se.Endpoints = append(se.Endpoints, ep)
	}
	return nil
}

// statusAddresses keeps the IP entries of status.addresses; a controller may also write
// values this proxy cannot answer with, which are not an error in the manifest.
func (o *serviceEntryObj) statusAddresses() []model.HostAddress {
	var out []model.HostAddress
	for _, sa := range o.Status.Addresses {
		a, err := netip.ParseAddr(sa.Value)
		if err != nil || a.Zone() != "" {
			continue
		}
		out = append(out, model.HostAddress{Host: dnsname.Host(sa.Host), Address: a.Unmap()})
	}
	return out
}

type workloadEntryObj struct {
	Metadata objectMeta   `yaml:"metadata"`
	Spec     workloadSpec `yaml:"spec"`
}

func (o *workloadEntryObj) toModel() (model.WorkloadEntry, error) {
	meta, err := o.Metadata.toModel(isDNSSubdomain)
	if err != nil {
		return model.WorkloadEntry{}, err
	}
	ep, err := o.Spec.toModel(fieldPath{"spec"}, false)
	if err != nil {
		return model.WorkloadEntry{}, err
	}
	return model.WorkloadEntry{Meta: meta, WorkloadEndpoint: ep}, nil
}
