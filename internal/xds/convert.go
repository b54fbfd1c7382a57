package xds

import (
	"fmt"
	"maps"
	"net/netip"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/meshdns/meshdns/api/meshdns/v1"
	"github.com/meshdns/meshdns/internal/model"
)

func metaPB(m model.Meta) *pb.Meta {
	out := &pb.Meta{Namespace: m.Namespace, Name: m.Name, Labels: m.Labels}
	if !m.Created.IsZero() {
		out.Created = timestamppb.New(m.Created)
	}
	return out
}

func metaModel(m *pb.Meta) model.Meta {
	out := model.Meta{Namespace: m.GetNamespace(), Name: m.GetName(), Labels: nilIfEmpty(m.GetLabels())}
	if m.GetCreated() != nil {
		out.Created = m.GetCreated().AsTime()
	}
	return out
}

func nilIfEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func addrsPB(addrs []netip.Addr) [][]byte {
	if len(addrs) == 0 {
		return nil
	}
	out := make([][]byte, len(addrs))
	for i, a := range addrs {
		out[i] = a.AsSlice()
	}
	return out
}

func addrModel(b []byte) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}, fmt.Errorf("address of %d bytes: want 4 or 16", len(b))
	}
	return a, nil
}

func addrsModel(bs [][]byte) ([]netip.Addr, error) {
	if len(bs) == 0 {
		return nil, nil
	}
	out := make([]netip.Addr, len(bs))
	for i, b := range bs {
		a, err := addrModel(b)
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func portsPB(ports []model.Port) []*pb.Port {
	if len(ports) == 0 {
		return nil
	}
	out := make([]*pb.Port, len(ports))
	for i, p := range ports {
		out[i] = &pb.Port{Name: p.Name, Protocol: p.Protocol, Number: uint32(p.Number)}
	}
	return out
}

func portsModel(ports []*pb.Port) ([]model.Port, error) {
	if len(ports) == 0 {
		return nil, nil
	}
	out := make([]model.Port, len(ports))
	for i, p := range ports {
		if p.GetNumber() > 65535 {
			return nil, fmt.Errorf("port %d: above 65535", p.GetNumber())
		}
		out[i] = model.Port{Name: p.GetName(), Protocol: p.GetProtocol(), Number: uint16(p.GetNumber())}
	}
	return out, nil
}

// ServicePB converts a Service to its message.
func ServicePB(s *model.Service) *pb.Service {
	return &pb.Service{Meta: metaPB(s.Meta), Type: string(s.Type), ClusterIps: addrsPB(s.ClusterIPs),
		Headless: s.Headless, ExternalName: s.ExternalName, Ports: portsPB(s.Ports), PublishNotReady: s.PublishNotReady}
}

// ServiceModel converts a Service message back.
func ServiceModel(s *pb.Service) (model.Service, error) {
	ips, err := addrsModel(s.GetClusterIps())
	if err != nil {
		return model.Service{}, err
	}
	ports, err := portsModel(s.GetPorts())
	if err != nil {
		return model.Service{}, err
	}
	return model.Service{Meta: metaModel(s.GetMeta()), Type: model.ServiceType(s.GetType()), ClusterIPs: ips,
		Headless: s.GetHeadless(), ExternalName: s.GetExternalName(), Ports: ports, PublishNotReady: s.GetPublishNotReady()}, nil
}

// EndpointSlicePB converts an EndpointSlice to its message.
func EndpointSlicePB(s *model.EndpointSlice) *pb.EndpointSlice {
	out := &pb.EndpointSlice{Meta: metaPB(s.Meta), ServiceName: s.ServiceName, Ports: portsPB(s.Ports)}
	for _, e := range s.Endpoints {
		pe := &pb.Endpoint{Addresses: addrsPB(e.Addresses), Ready: e.Ready, Hostname: e.Hostname}
		if r := e.TargetRef; r != nil {
			pe.TargetRef = &pb.ObjectRef{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
		}
		out.Endpoints = append(out.Endpoints, pe)
	}
	return out
}

// EndpointSliceModel converts an EndpointSlice message back.
func EndpointSliceModel(s *pb.EndpointSlice) (model.EndpointSlice, error) {
	ports, err := portsModel(s.GetPorts())
	if err != nil {
		return model.EndpointSlice{}, err
	}
	out := model.EndpointSlice{Meta: metaModel(s.GetMeta()), ServiceName: s.GetServiceName(), Ports: ports}
	for _, pe := range s.GetEndpoints() {
		addrs, err := addrsModel(pe.GetAddresses())
		if err != nil {
			return model.EndpointSlice{}, err
		}
		e := model.Endpoint{Addresses: addrs, Ready: pe.GetReady(), Hostname: pe.GetHostname()}
		if r := pe.GetTargetRef(); r != nil {
			e.TargetRef = &model.ObjectRef{Kind: r.GetKind(), Namespace: r.GetNamespace(), Name: r.GetName()}
		}
		out.Endpoints = append(out.Endpoints, e)
	}
	return out, nil
}

// PodPB converts a Pod to its message.
func PodPB(p *model.Pod) *pb.Pod {
	return &pb.Pod{Meta: metaPB(p.Meta), Ips: addrsPB(p.IPs), Hostname: p.Hostname, Subdomain: p.Subdomain}
}

// PodModel converts a Pod message back.
func PodModel(p *pb.Pod) (model.Pod, error) {
	ips, err := addrsModel(p.GetIps())
	if err != nil {
		return model.Pod{}, err
	}
	return model.Pod{Meta: metaModel(p.GetMeta()), IPs: ips, Hostname: p.GetHostname(), Subdomain: p.GetSubdomain()}, nil
}

func workloadPB(e *model.WorkloadEndpoint) *pb.WorkloadEndpoint {
	return &pb.WorkloadEndpoint{Address: e.Address, Labels: e.Labels, Ports: e.Ports, Network: e.Network}
}

func workloadModel(e *pb.WorkloadEndpoint) model.WorkloadEndpoint {
	return model.WorkloadEndpoint{Address: e.GetAddress(), Labels: nilIfEmpty(e.GetLabels()),
		Ports: nilIfEmpty(e.GetPorts()), Network: e.GetNetwork()}
}

// ServiceEntryPB converts a ServiceEntry to its message.
func ServiceEntryPB(se *model.ServiceEntry) *pb.ServiceEntry {
	out := &pb.ServiceEntry{Meta: metaPB(se.Meta), Hosts: se.Hosts, Ports: portsPB(se.Ports),
		Location: string(se.Location), Resolution: string(se.Resolution),
		WorkloadSelector: se.WorkloadSelector, ExportTo: se.ExportTo}
	for _, p := range se.Addresses {
		out.Addresses = append(out.Addresses, &pb.Prefix{Address: p.Addr().AsSlice(), Bits: uint32(p.Bits())})
	}
	for i := range se.Endpoints {
		out.Endpoints = append(out.Endpoints, workloadPB(&se.Endpoints[i]))
	}
	for _, h := range se.StatusAddresses {
		out.StatusAddresses = append(out.StatusAddresses, &pb.HostAddress{Host: h.Host, Address: h.Address.AsSlice()})
	}
	return out
}

// ServiceEntryModel converts a ServiceEntry message back.
func ServiceEntryModel(se *pb.ServiceEntry) (model.ServiceEntry, error) {
	ports, err := portsModel(se.GetPorts())
	if err != nil {
		return model.ServiceEntry{}, err
	}
	out := model.ServiceEntry{Meta: metaModel(se.GetMeta()), Hosts: se.GetHosts(), Ports: ports,
		Location: model.Location(se.GetLocation()), Resolution: model.Resolution(se.GetResolution()),
		WorkloadSelector: nilIfEmpty(se.GetWorkloadSelector()), ExportTo: se.GetExportTo()}
	for _, p := range se.GetAddresses() {
		a, err := addrModel(p.GetAddress())
		if err != nil {
			return model.ServiceEntry{}, err
		}
		if int(p.GetBits()) > a.BitLen() {
			return model.ServiceEntry{}, fmt.Errorf("prefix length %d of %s: above %d", p.GetBits(), a, a.BitLen())
		}
		out.Addresses = append(out.Addresses, netip.PrefixFrom(a, int(p.GetBits())))
	}
	for _, e := range se.GetEndpoints() {
		out.Endpoints = append(out.Endpoints, workloadModel(e))
	}
	for _, h := range se.GetStatusAddresses() {
		a, err := addrModel(h.GetAddress())
		if err != nil {
			return model.ServiceEntry{}, err
		}
		out.StatusAddresses = append(out.StatusAddresses, model.HostAddress{Host: h.GetHost(), Address: a})
	}
	return out, nil
}

// WorkloadEntryPB converts a WorkloadEntry to its message.
func WorkloadEntryPB(we *model.WorkloadEntry) *pb.WorkloadEntry {
	return &pb.WorkloadEntry{Meta: metaPB(we.Meta), Endpoint: workloadPB(&we.WorkloadEndpoint)}
}

// WorkloadEntryModel converts a WorkloadEntry message back.
func WorkloadEntryModel(we *pb.WorkloadEntry) model.WorkloadEntry {
	return model.WorkloadEntry{Meta: metaModel(we.GetMeta()), WorkloadEndpoint: workloadModel(we.GetEndpoint())}
}
