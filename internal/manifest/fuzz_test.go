package manifest

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/model"
)

// FuzzParseFile feeds arbitrary manifests to the parser: it must never panic, must reject with
// a ParseError naming the file and document, and whatever it accepts must hold the model's
// invariants.
func FuzzParseFile(f *testing.F) {
	for _, tc := range goodCases {
		f.Add([]byte(tc.data))
	}
	for _, tc := range badCases {
		f.Add([]byte(tc.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		snap, err := ParseFile("f.yaml", data, nil)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Document < 1 || !strings.HasPrefix(err.Error(), "f.yaml: document ") {
				t.Fatalf("error %q (%T) does not name the file and document", err, err)
			}
			return
		}
		if err := checkSnapshot(snap); err != nil {
			t.Fatalf("accepted snapshot breaks an invariant: %v\n%s", err, dump(snap))
		}
		again, _ := ParseFile("f.yaml", data, nil)
		if !reflect.DeepEqual(snap, again) {
			t.Fatalf("ParseFile is not deterministic")
		}
	})
}

// checkSnapshot returns the first invariant a parsed snapshot breaks.
func checkSnapshot(s model.Snapshot) error {
	for _, svc := range s.Services {
		if err := checkService(svc); err != nil {
			return fmt.Errorf("service %s: %w", svc.Key(), err)
		}
	}
	for _, es := range s.EndpointSlices {
		if err := checkEndpointSlice(es); err != nil {
			return fmt.Errorf("endpointslice %s: %w", es.Key(), err)
		}
	}
	for _, pod := range s.Pods {
		if err := checkMeta(pod.Meta); err != nil {
			return err
		}
		if err := checkAddrs(pod.IPs, true); err != nil {
			return fmt.Errorf("pod %s: %w", pod.Key(), err)
		}
	}
	for _, ns := range s.Namespaces {
		if !isDNSLabel(ns.Name) {
			return fmt.Errorf("namespace %q", ns.Name)
		}
	}
	for _, se := range s.ServiceEntries {
		if err := checkServiceEntry(se); err != nil {
			return fmt.Errorf("serviceentry %s: %w", se.Key(), err)
		}
	}
	for _, we := range s.WorkloadEntries {
		if err := checkMeta(we.Meta); err != nil {
			return err
		}
		if err := checkPorts(nil, we.Ports); err != nil {
			return fmt.Errorf("workloadentry %s: %w", we.Key(), err)
		}
	}
	return nil
}

func checkMeta(m model.Meta) error {
	if !isDNSSubdomain(m.Name) || !isDNSLabel(m.Namespace) {
		return fmt.Errorf("bad name %q or namespace %q", m.Name, m.Namespace)
	}
	return nil
}

func checkService(svc model.Service) error {
	if err := checkMeta(svc.Meta); err != nil {
		return err
	}
	switch svc.Type {
	case model.ServiceTypeClusterIP, model.ServiceTypeNodePort, model.ServiceTypeLoadBalancer:
	case model.ServiceTypeExternalName:
		if err := checkHost(svc.ExternalName, false); err != nil {
			return err
		}
	default:
		return fmt.Errorf("type %q", svc.Type)
	}
	if svc.Headless && len(svc.ClusterIPs) > 0 || len(svc.ClusterIPs) > 2 {
		return fmt.Errorf("cluster IPs %v headless %v", svc.ClusterIPs, svc.Headless)
	}
	if err := checkAddrs(svc.ClusterIPs, true); err != nil {
		return err
	}
	return checkPorts(svc.Ports, nil)
}

func checkEndpointSlice(es model.EndpointSlice) error {
	if err := checkMeta(es.Meta); err != nil {
		return err
	}
	for _, ep := range es.Endpoints {
		if len(ep.Addresses) == 0 {
			return errors.New("endpoint without addresses")
		}
		if err := checkAddrs(ep.Addresses, false); err != nil {
			return err
		}
		if ep.TargetRef != nil && ep.TargetRef.Namespace == "" {
			return errors.New("targetRef without namespace")
		}
	}
	return checkPorts(es.Ports, nil)
}

func checkServiceEntry(se model.ServiceEntry) error {
	if err := checkMeta(se.Meta); err != nil {
		return err
	}
	if len(se.Hosts) == 0 || se.Location == "" || se.Resolution == "" {
		return fmt.Errorf("hosts %q location %q resolution %q", se.Hosts, se.Location, se.Resolution)
	}
	for _, h := range se.Hosts {
		if err := checkHost(h, true); err != nil {
			return err
		}
	}
	for _, p := range se.Addresses {
		if !p.IsValid() {
			return fmt.Errorf("address %v", p)
		}
	}
	for _, sa := range se.StatusAddresses {
		if !sa.Address.IsValid() || sa.Address.Is4In6() {
			return fmt.Errorf("status address %v", sa.Address)
		}
	}
	for _, ep := range se.Endpoints {
		if err := checkPorts(nil, ep.Ports); err != nil {
			return err
		}
	}
	return checkPorts(se.Ports, nil)
}

func checkHost(h string, wildcard bool) error {
	if h == "" || h != strings.ToLower(h) || strings.HasSuffix(h, ".") || h == "*" ||
		!wildcard && strings.Contains(h, "*") || strings.Contains(strings.TrimPrefix(h, "*."), "*") {
		return fmt.Errorf("host %q", h)
	}
	// The one rule for host names: an accepted host is already in dnsname's form.
	if again, err := dnsname.ParseHost(h, wildcard); err != nil || again != h {
		return fmt.Errorf("host %q is not a normalised host name (%q, %v)", h, again, err)
	}
	return nil
}

func checkAddrs(as []netip.Addr, unique bool) error {
	for i, a := range as {
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			return fmt.Errorf("address %v", a)
		}
		for _, b := range as[:i] {
			if unique && a == b {
				return fmt.Errorf("duplicate address %v", a)
			}
		}
	}
	return nil
}

func checkPorts(ports []model.Port, named map[string]uint32) error {
	for _, p := range ports {
		if p.Number == 0 || p.Protocol != strings.ToUpper(p.Protocol) {
			return fmt.Errorf("port %+v", p)
		}
	}
	for name, n := range named {
		if n == 0 || n > 65535 {
			return fmt.Errorf("port %s=%d", name, n)
		}
	}
	return nil
}
