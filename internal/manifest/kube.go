package manifest

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/model"
)

// kubePort is the port shape shared by Service and EndpointSlice.
type kubePort struct {
	Name     string `yaml:"name"`
	Protocol string `yaml:"protocol"`
	Port     *int   `yaml:"port"`
}

// kubePorts converts ports; a nil port is an error when portRequired, else the entry is
// dropped (an EndpointSlice port without a number means "all ports", useless for SRV).
func kubePorts(base fieldPath, in []kubePort, portRequired bool) ([]model.Port, error) {
	var out []model.Port
	for i, kp := range in {
		p := base.with(i, "port")
		if kp.Port == nil {
			if portRequired {
				return nil, required(p)
			}
			continue
		}
		num, err := portNumber(p, *kp.Port)
		if err != nil {
			return nil, err
		}
		proto := strings.ToUpper(kp.Protocol)
		if proto == "" {
			proto = "TCP"
		}
		out = append(out, model.Port{Name: kp.Name, Protocol: proto, Number: num})
	}
	return out, nil
}

type serviceObj struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Type                     string     `yaml:"type"`
		ClusterIP                string     `yaml:"clusterIP"`
		ClusterIPs               []string   `yaml:"clusterIPs"`
		ExternalName             string     `yaml:"externalName"`
		Ports                    []kubePort `yaml:"ports"`
		PublishNotReadyAddresses bool       `yaml:"publishNotReadyAddresses"`
	} `yaml:"spec"`
}

func (o *serviceObj) toModel() (model.Service, error) {
	meta, err := o.Metadata.toModel(isDNSLabel)
	if err != nil {
		return model.Service{}, err
	}
	svc := model.Service{Meta: meta, Type: model.ServiceType(o.Spec.Type), PublishNotReady: o.Spec.PublishNotReadyAddresses}
	switch svc.Type {
	case "":
		svc.Type = model.ServiceTypeClusterIP
	case model.ServiceTypeClusterIP, model.ServiceTypeNodePort, model.ServiceTypeLoadBalancer, model.ServiceTypeExternalName:
	default:
		return model.Service{}, invalid(fieldPath{"spec", "type"}, o.Spec.Type,
			"want ClusterIP, NodePort, LoadBalancer or ExternalName")
	}
	if svc.Ports, err = kubePorts(fieldPath{"spec", "ports"}, o.Spec.Ports, true); err != nil {
		return model.Service{}, err
	}
	if svc.Type == model.ServiceTypeExternalName {
		// The API clears cluster IPs of ExternalName services; only the target matters.
		svc.ExternalName, err = o.externalName()
		return svc, err
	}
	svc.ClusterIPs, svc.Headless, err = o.clusterIPs()
	return svc, err
}

func (o *serviceObj) externalName() (string, error) {
	p := fieldPath{"spec", "externalName"}
	if o.Spec.ExternalName == "" {
		return "", required(p)
	}
	name, err := dnsname.ParseHost(o.Spec.ExternalName, false)
	if err != nil {
		return "", invalid(p, o.Spec.ExternalName, "not a valid DNS name: "+err.Error())
	}
	return name, nil
}

// clusterIPs reads spec.clusterIPs, falling back to spec.clusterIP, with the API's rules:
// clusterIPs[0] equals clusterIP, "None" stands alone, at most one address per family.
func (o *serviceObj) clusterIPs() (ips []netip.Addr, headless bool, err error) {
	raw, key := o.Spec.ClusterIPs, "clusterIPs"
	if len(raw) == 0 {
		if o.Spec.ClusterIP == "" {
			return nil, false, nil
		}
		raw, key = []string{o.Spec.ClusterIP}, "clusterIP"
	} else if o.Spec.ClusterIP != "" && raw[0] != o.Spec.ClusterIP {
		return nil, false, invalid(fieldPath{"spec", "clusterIPs", 0}, raw[0],
			fmt.Sprintf("must equal spec.clusterIP %q", o.Spec.ClusterIP))
	}
	for i, s := range raw {
		p := fieldPath{"spec", key}
		if key == "clusterIPs" {
			p = p.with(i)
		}
		if s == "None" {
			if len(raw) > 1 {
				return nil, false, invalid(p, s, "None must be the only cluster IP")
			}
			return nil, true, nil
		}
		a, err := parseIP(p, s)
		if err != nil {
			return nil, false, err
		}
		if len(ips) == 1 && ips[0].Is4() == a.Is4() || len(ips) == 2 {
			return nil, false, invalid(p, s, "at most one IPv4 and one IPv6 cluster IP")
		}
		ips = append(ips, a)
	}
	return ips, false, nil
}

type endpointSliceObj struct {
	Metadata    objectMeta `yaml:"metadata"`
	AddressType string     `yaml:"addressType"`
	Endpoints   []struct {
		Addresses  []string `yaml:"addresses"`
		Conditions struct {
			Ready *bool `yaml:"ready"`
		} `yaml:"conditions"`
		Hostname  string `yaml:"hostname"`
		TargetRef *struct {
			Kind      string `yaml:"kind"`
			Namespace string `yaml:"namespace"`
			Name      string `yaml:"name"`
		} `yaml:"targetRef"`
	} `yaml:"endpoints"`
	Ports []kubePort `yaml:"ports"`
}

func (o *endpointSliceObj) toModel() (model.EndpointSlice, error) {
	meta, err := o.Metadata.toModel(isDNSSubdomain)
	if err != nil {
		return model.EndpointSlice{}, err
	}
	switch o.AddressType {
	case "", "IPv4", "IPv6":
	case "FQDN":
		return model.EndpointSlice{}, fmt.Errorf("addressType FQDN: %w", errIgnored)
	default:
		return model.EndpointSlice{}, invalid(fieldPath{"addressType"}, o.AddressType, "want IPv4, IPv6 or FQDN")
	}
	es := model.EndpointSlice{Meta: meta, ServiceName: meta.Labels["kubernetes.io/service-name"]}
	if es.Ports, err = kubePorts(fieldPath{"ports"}, o.Ports, false); err != nil {
		return model.EndpointSlice{}, err
	}
	for i := range o.Endpoints {
		ep, err := o.endpoint(i, meta.Namespace)
		if err != nil {
			return model.EndpointSlice{}, err
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es, nil
}

func (o *endpointSliceObj) endpoint(i int, namespace string) (model.Endpoint, error) {
	in := o.Endpoints[i]
	base := fieldPath{"endpoints", i}
	if len(in.Addresses) == 0 {
		return model.Endpoint{}, required(base.with("addresses"))
	}
	ep := model.Endpoint{Ready: in.Conditions.Ready == nil || *in.Conditions.Ready, Hostname: in.Hostname}
	if ep.Hostname != "" && !isDNSLabel(ep.Hostname) {
		return model.Endpoint{}, invalid(base.with("hostname"), in.Hostname, "not a valid DNS label")
	}
	for j, s := range in.Addresses {
		p := base.with("addresses", j)
		a, err := parseIP(p, s)
		if err != nil {
			return model.Endpoint{}, err
		}
		if o.AddressType == "IPv4" && !a.Is4() || o.AddressType == "IPv6" && !a.Is6() {
			return model.Endpoint{}, invalid(p, s, "not an "+o.AddressType+" address")
		}
		ep.Addresses = append(ep.Addresses, a)
	}
	if ref := in.TargetRef; ref != nil {
		ep.TargetRef = &model.ObjectRef{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name}
		if ep.TargetRef.Namespace == "" {
			ep.TargetRef.Namespace = namespace
		}
	}
	return ep, nil
}

type podObj struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Hostname  string `yaml:"hostname"`
		Subdomain string `yaml:"subdomain"`
	} `yaml:"spec"`
	Status struct {
		PodIP  string `yaml:"podIP"`
		PodIPs []struct {
			IP string `yaml:"ip"`
		} `yaml:"podIPs"`
	} `yaml:"status"`
}

func (o *podObj) toModel() (model.Pod, error) {
	meta, err := o.Metadata.toModel(isDNSSubdomain)
	if err != nil {
		return model.Pod{}, err
	}
	pod := model.Pod{Meta: meta, Hostname: o.Spec.Hostname, Subdomain: o.Spec.Subdomain}
	if pod.Hostname != "" && !isDNSLabel(pod.Hostname) {
		return model.Pod{}, invalid(fieldPath{"spec", "hostname"}, pod.Hostname, "not a valid DNS label")
	}
	if pod.Subdomain != "" && !isDNSLabel(pod.Subdomain) {
		return model.Pod{}, invalid(fieldPath{"spec", "subdomain"}, pod.Subdomain, "not a valid DNS label")
	}
	if o.Status.PodIP != "" {
		if err := addIP(&pod, fieldPath{"status", "podIP"}, o.Status.PodIP); err != nil {
			return model.Pod{}, err
		}
	}
	for i, pip := range o.Status.PodIPs {
		if err := addIP(&pod, fieldPath{"status", "podIPs", i, "ip"}, pip.IP); err != nil {
			return model.Pod{}, err
		}
	}
	return pod, nil
}

// addIP appends s unless already present: podIP normally repeats podIPs[0].
func addIP(pod *model.Pod, p fieldPath, s string) error {
	a, err := parseIP(p, s)
	if err != nil {
		return err
	}
	for _, have := range pod.IPs {
		if have == a {
			return nil
		}
	}
	pod.IPs = append(pod.IPs, a)
	return nil
}

type namespaceObj struct {
	Metadata objectMeta `yaml:"metadata"`
}

func (o *namespaceObj) toModel() (model.Namespace, error) {
	p := fieldPath{"metadata", "name"}
	switch {
	case o.Metadata.Name == "":
		return model.Namespace{}, required(p)
	case !isDNSLabel(o.Metadata.Name):
		return model.Namespace{}, invalid(p, o.Metadata.Name, "not a valid DNS label")
	}
	return model.Namespace{Name: o.Metadata.Name}, nil
}
