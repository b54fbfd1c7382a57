package kube

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/manifest"
	"github.com/meshdns/meshdns/internal/model"
)

// The API server has validated core objects already, so these conversions only translate;
// an address that does not parse (which the API would not accept) is left out. Istio objects
// come through their CRD's looser schema and are checked by the manifest parser.

func objectMeta(m metav1.ObjectMeta) model.Meta {
	return model.Meta{Namespace: m.Namespace, Name: m.Name, Labels: m.Labels, Created: m.CreationTimestamp.Time}
}

// unlabelled is objectMeta without the labels, for the kinds whose labels no name and no
// selection depends on (Services, EndpointSlices): kept, they were about a third of the
// records' memory, here and in every agent of a controller.
func unlabelled(m metav1.ObjectMeta) model.Meta {
	return model.Meta{Namespace: m.Namespace, Name: m.Name, Created: m.CreationTimestamp.Time}
}

func ports[P any](in []P, get func(P) (string, corev1.Protocol, *int32)) []model.Port {
	var out []model.Port
	for _, p := range in {
		name, proto, num := get(p)
		if num == nil || *num <= 0 || *num > 65535 {
			continue // an EndpointSlice port without a number means "all ports": no SRV
		}
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, model.Port{Name: name, Protocol: strings.ToUpper(string(proto)), Number: uint16(*num)})
	}
	return out
}

func servicePort(p corev1.ServicePort) (string, corev1.Protocol, *int32) {
	return p.Name, p.Protocol, &p.Port
}

func endpointPort(p discoveryv1.EndpointPort) (string, corev1.Protocol, *int32) {
	proto := corev1.ProtocolTCP
	if p.Protocol != nil {
		proto = *p.Protocol
	}
	name := ""
	if p.Name != nil {
		name = *p.Name
	}
	return name, proto, p.Port
}

func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func serviceRecord(s *corev1.Service) model.Service {
	svc := model.Service{Meta: unlabelled(s.ObjectMeta), Type: model.ServiceType(s.Spec.Type),
		PublishNotReady: s.Spec.PublishNotReadyAddresses, Ports: ports(s.Spec.Ports, servicePort)}
	if svc.Type == "" {
		svc.Type = model.ServiceTypeClusterIP
	}
	if svc.Type == model.ServiceTypeExternalName {
		svc.ExternalName = dnsname.Host(s.Spec.ExternalName)
		return svc
	}
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if ip == corev1.ClusterIPNone {
			svc.Headless = true
			return svc
		}
		if a, ok := parseIP(ip); ok {
			svc.ClusterIPs = append(svc.ClusterIPs, a)
		}
	}
	return svc
}

// errFQDNSlice: EndpointSlices of addressType FQDN name hosts, not addresses; DNS ignores them.
var errFQDNSlice = errors.New("addressType FQDN is not used by DNS")

func endpointSliceRecord(s *discoveryv1.EndpointSlice) (model.EndpointSlice, error) {
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return model.EndpointSlice{}, errFQDNSlice
	}
	es := model.EndpointSlice{Meta: unlabelled(s.ObjectMeta), ServiceName: s.Labels[discoveryv1.LabelServiceName],
		Ports: ports(s.Ports, endpointPort)}
	for _, in := range s.Endpoints {
		// An absent ready condition counts as ready, as the API documents.
		ep := model.Endpoint{Ready: in.Conditions.Ready == nil || *in.Conditions.Ready}
		if in.Hostname != nil {
			ep.Hostname = *in.Hostname
		}
		for _, s := range in.Addresses {
			if a, ok := parseIP(s); ok {
				ep.Addresses = append(ep.Addresses, a)
			}
		}
		if ref := in.TargetRef; ref != nil {
			ep.TargetRef = &model.ObjectRef{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}
			if ep.TargetRef.Namespace == "" {
				ep.TargetRef.Namespace = s.Namespace
			}
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es, nil
}

func podRecord(p *corev1.Pod) model.Pod {
	pod := model.Pod{Meta: objectMeta(p.ObjectMeta), Hostname: p.Spec.Hostname, Subdomain: p.Spec.Subdomain}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
		// A finished or terminating pod's address may already belong to another pod: it is
		// nobody's workload any more (Istio leaves such pods out too).
		return pod
	}
	add := func(s string) {
		if a, ok := parseIP(s); ok && !containsAddr(pod.IPs, a) {
			pod.IPs = append(pod.IPs, a)
		}
	}
	if p.Status.PodIP != "" {
		add(p.Status.PodIP)
	}
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	return pod
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, have := range as {
		if have == a {
			return true
		}
	}
	return false
}

// istioRecord converts a ServiceEntry or WorkloadEntry with the manifest decoder, straight from
// the dynamic client's data, so that both sources read Istio objects the same way.
func istioRecord(u *unstructured.Unstructured) (any, error) {
	snap, err := manifest.ParseObject(u.Object)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.GetKind(), err)
	}
	switch {
	case len(snap.ServiceEntries) == 1:
		return snap.ServiceEntries[0], nil
	case len(snap.WorkloadEntries) == 1:
		return snap.WorkloadEntries[0], nil
	}
	return nil, fmt.Errorf("%s %s: not a ServiceEntry or WorkloadEntry", u.GetAPIVersion(), u.GetKind())
}
