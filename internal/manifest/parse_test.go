package manifest

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func meta(ns, name string, labels map[string]string) model.Meta {
	return model.Meta{Namespace: ns, Name: name, Labels: labels}
}

type parseCase struct {
	name string
	file string // file name, decides nothing but the error text
	data string
	want model.Snapshot
}

var goodCases = []parseCase{
	{
		name: "service cluster IP with defaults",
		file: "svc.yaml",
		data: `apiVersion: v1
kind: Service
metadata:
  name: reviews
  labels: {app: reviews}
  creationTimestamp: "2024-05-06T07:08:09Z"
spec:
  clusterIP: 10.96.0.12
  ports:
  - name: http
    port: 9080
  - name: dns
    protocol: udp
    port: 53
`,
		want: model.Snapshot{Services: []model.Service{{
			Meta: model.Meta{Namespace: "default", Name: "reviews", Labels: map[string]string{"app": "reviews"},
				Created: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)},
			Type:       model.ServiceTypeClusterIP,
			ClusterIPs: addrs("10.96.0.12"),
			Ports:      []model.Port{{Name: "http", Protocol: "TCP", Number: 9080}, {Name: "dns", Protocol: "UDP", Number: 53}},
		}}},
	},
	{
		name: "service dual stack",
		file: "dual.yaml",
		data: `apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20, "fd00::20"]
  ports: [{port: 80}]
`,
		want: model.Snapshot{Services: []model.Service{{
			Meta: meta("prod", "web", nil), Type: model.ServiceTypeLoadBalancer,
			ClusterIPs: addrs("10.96.0.20", "fd00::20"),
			Ports:      []model.Port{{Protocol: "TCP", Number: 80}},
		}}},
	},
	{
		name: "service headless publishing not ready",
		file: "headless.yaml",
		data: `apiVersion: v1
kind: Service
metadata: {name: db, namespace: prod}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
`,
		want: model.Snapshot{Services: []model.Service{{
			Meta: meta("prod", "db", nil), Type: model.ServiceTypeClusterIP, Headless: true, PublishNotReady: true,
		}}},
	},
	{
		name: "service ExternalName lowercased without trailing dot",
		file: "ext.yaml",
		data: `apiVersion: v1
kind: Service
metadata: {name: search, namespace: prod}
spec:
  type: ExternalName
  externalName: Search.Example.COM.
`,
		want: model.Snapshot{Services: []model.Service{{
			Meta: meta("prod", "search", nil), Type: model.ServiceTypeExternalName,
			ExternalName: "search.example.com",
		}}},
	},
	{
		name: "List of objects",
		file: "list.yaml",
		data: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: prod}
- apiVersion: v1
  kind: Service
  metadata: {name: a, namespace: prod}
  spec: {clusterIP: 10.96.0.1}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: ignored}
`,
		want: model.Snapshot{
			Namespaces: []model.Namespace{{Name: "prod"}},
			Services: []model.Service{{Meta: meta("prod", "a", nil), Type: model.ServiceTypeClusterIP,
				ClusterIPs: addrs("10.96.0.1")}},
		},
	},
	{
		name: "multi document with empty and unknown documents",
		file: "multi.yml",
		data: `# leading comment
---
apiVersion: v1
kind: Namespace
metadata: {name: one}
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: knative}
---
apiVersion: networking.istio.io/v2
kind: ServiceEntry
metadata: {name: future}
---
apiVersion: v1
kind: Namespace
metadata: {name: two}
`,
		want: model.Snapshot{Namespaces: []model.Namespace{{Name: "one"}, {Name: "two"}}},
	},
	{
		name: "JSON file",
		file: "svc.json",
		data: "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Service\",\n\t\"metadata\": {\"name\": \"api\", \"namespace\": \"prod\"},\n" +
			"\t\"spec\": {\"clusterIP\": \"10.96.0.30\", \"ports\": [{\"name\": \"grpc\", \"port\": 8443}]}\n}\n",
		want: model.Snapshot{Services: []model.Service{{
			Meta: meta("prod", "api", nil), Type: model.ServiceTypeClusterIP,
			ClusterIPs: addrs("10.96.0.30"), Ports: []model.Port{{Name: "grpc", Protocol: "TCP", Number: 8443}},
		}}},
	},
	{
		name: "EndpointSlice conditions, targetRef and ports",
		file: "eps.yaml",
		data: `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abc12
  namespace: prod
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
endpoints:
- addresses: [10.1.0.1]
  hostname: db-0
  targetRef: {kind: Pod, name: db-0}
- addresses: [10.1.0.2]
  conditions: {ready: false}
  targetRef: {kind: Pod, namespace: other, name: db-1}
- addresses: [10.1.0.3]
  conditions: {ready: null}
ports:
- {name: sql, port: 5432}
- {name: all}
`,
		want: model.Snapshot{EndpointSlices: []model.EndpointSlice{{
			Meta:        meta("prod", "db-abc12", map[string]string{"kubernetes.io/service-name": "db"}),
			ServiceName: "db",
			Endpoints: []model.Endpoint{
				{Addresses: addrs("10.1.0.1"), Ready: true, Hostname: "db-0",
					TargetRef: &model.ObjectRef{Kind: "Pod", Namespace: "prod", Name: "db-0"}},
				{Addresses: addrs("10.1.0.2"), Ready: false,
					TargetRef: &model.ObjectRef{Kind: "Pod", Namespace: "other", Name: "db-1"}},
				{Addresses: addrs("10.1.0.3"), Ready: true},
			},
			Ports: []model.Port{{Name: "sql", Protocol: "TCP", Number: 5432}},
		}}},
	},
	{
		name: "EndpointSlice FQDN ignored",
		file: "fqdn.yaml",
		data: `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: x}
addressType: FQDN
endpoints: [{addresses: [example.com]}]
`,
	},
	{
		name: "Pod IPs deduplicated",
		file: "pod.yaml",
		data: `apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: prod, labels: {app: db}}
spec: {hostname: db-0, subdomain: db}
status:
  podIP: 10.1.0.1
  podIPs: [{ip: 10.1.0.1}, {ip: "fd00::1"}]
`,
		want: model.Snapshot{Pods: []model.Pod{{
			Meta: meta("prod", "db-0", map[string]string{"app": "db"}),
			IPs:  addrs("10.1.0.1", "fd00::1"), Hostname: "db-0", Subdomain: "db",
		}}},
	},
	{
		name: "ServiceEntry v1alpha3 with defaults, wildcard and CIDR",
		file: "se.yaml",
		data: `apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: external, namespace: prod}
spec:
  hosts: ["*.Example.COM.", api.example.org]
  addresses: [240.0.0.1, 10.10.0.0/16, "2001:db8::1"]
  ports: [{number: 443, name: https, protocol: tls}]
`,
		want: model.Snapshot{ServiceEntries: []model.ServiceEntry{{
			Meta:       meta("prod", "external", nil),
			Hosts:      []string{"*.example.com", "api.example.org"},
			Addresses:  prefixes("240.0.0.1/32", "10.10.0.0/16", "2001:db8::1/128"),
			Ports:      []model.Port{{Name: "https", Protocol: "TLS", Number: 443}},
			Location:   model.LocationExternal,
			Resolution: model.ResolutionNone,
		}}},
	},
	{
		name: "ServiceEntry v1beta1 endpoints, selector, exportTo and status addresses",
		file: "se2.yaml",
		data: `apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: mongo, namespace: prod}
spec:
  hosts: [mongo.prod.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 27017, name: mongo, protocol: MONGO}]
  endpoints:
  - address: 10.2.0.1
    labels: {zone: a}
    ports: {mongo: 27018}
    network: net1
  - address: unix:///var/run/mongo.sock
  workloadSelector: {labels: {app: mongo}}
  exportTo: [".", istio-system]
status:
  addresses:
  - {host: Mongo.prod.svc.cluster.local., value: 240.240.0.5}
  - {host: mongo.prod.svc.cluster.local, value: "2001:2::5"}
  - {host: mongo.prod.svc.cluster.local, value: not-an-ip}
`,
		want: model.Snapshot{ServiceEntries: []model.ServiceEntry{{
			Meta:       meta("prod", "mongo", nil),
			Hosts:      []string{"mongo.prod.svc.cluster.local"},
			Ports:      []model.Port{{Name: "mongo", Protocol: "MONGO", Number: 27017}},
			Location:   model.LocationInternal,
			Resolution: model.ResolutionStatic,
			Endpoints: []model.WorkloadEndpoint{
				{Address: "10.2.0.1", Labels: map[string]string{"zone": "a"}, Ports: map[string]uint32{"mongo": 27018}, Network: "net1"},
				{Address: "unix:///var/run/mongo.sock"},
			},
			WorkloadSelector: map[string]string{"app": "mongo"},
			ExportTo:         []string{".", "istio-system"},
			StatusAddresses: []model.HostAddress{
				{Host: "mongo.prod.svc.cluster.local", Address: netip.MustParseAddr("240.240.0.5")},
				{Host: "mongo.prod.svc.cluster.local", Address: netip.MustParseAddr("2001:2::5")},
			},
		}}},
	},
	{
		name: "ServiceEntry v1 DNS resolution with host endpoint",
		file: "se3.yaml",
		data: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-db}
spec:
  hosts: [db.example.com]
  resolution: DNS
  endpoints: [{address: db1.example.com}]
`,
		want: model.Snapshot{ServiceEntries: []model.ServiceEntry{{
			Meta: meta("default", "ext-db", nil), Hosts: []string{"db.example.com"},
			Location: model.LocationExternal, Resolution: model.ResolutionDNS,
			Endpoints: []model.WorkloadEndpoint{{Address: "db1.example.com"}},
		}}},
	},
	{
		name: "WorkloadEntry",
		file: "we.yaml",
		data: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: prod}
spec:
  address: 192.168.1.10
  labels: {app: mongo}
  ports: {mongo: 27017}
  network: vm-net
`,
		want: model.Snapshot{WorkloadEntries: []model.WorkloadEntry{{
			Meta: meta("prod", "vm-1", nil),
			WorkloadEndpoint: model.WorkloadEndpoint{Address: "192.168.1.10", Labels: map[string]string{"app": "mongo"},
				Ports: map[string]uint32{"mongo": 27017}, Network: "vm-net"},
		}}},
	},
	{
		name: "ServiceEntry status hosts folded in ASCII only",
		file: "se4.yaml",
		data: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: prod}
spec:
  hosts: [API.Example.com.]
status:
  addresses:
  - {host: API.Example.com., value: 240.240.0.6}
  - {host: "\u212a.example.com", value: 240.240.0.7}
`,
		want: model.Snapshot{ServiceEntries: []model.ServiceEntry{{
			Meta: meta("prod", "a", nil), Hosts: []string{"api.example.com"},
			Location: model.LocationExternal, Resolution: model.ResolutionNone,
			StatusAddresses: []model.HostAddress{
				{Host: "api.example.com", Address: netip.MustParseAddr("240.240.0.6")},
				// RFC 4343: the Kelvin sign is not the letter k, so it is kept as written.
				{Host: "\u212a.example.com", Address: netip.MustParseAddr("240.240.0.7")},
			},
		}}},
	},
	{name: "empty file", file: "empty.yaml", data: ""},
	{name: "comments only", file: "comment.yaml", data: "# nothing here\n"},
	{name: "mapping without kind", file: "values.yaml", data: "replicas: 3\nimage: x\n"},
}

func TestParseFile(t *testing.T) {
	for _, tc := range goodCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFile(tc.file, []byte(tc.data), nil)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("snapshot mismatch\n got: %s\nwant: %s", dump(got), dump(tc.want))
			}
		})
	}
}

func dump(s model.Snapshot) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type badCase struct {
	name string
	file string
	data string
	want string // exact error text, or a substring when wantSub
	sub  bool
	line int // ParseError.Line
	doc  int // ParseError.Document
}

var badCases = []badCase{
	{
		name: "bad cluster IP in second document",
		file: "registry/bad.yaml",
		data: `apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: prod
spec:
  clusterIP: 10.0.0.999
`,
		want: `registry/bad.yaml: document 2 (line 11): spec.clusterIP "10.0.0.999": not an IP address`,
		line: 11, doc: 2,
	},
	{
		name: "syntax error in third document",
		file: "registry/bad.yaml",
		data: "kind: Namespace\n---\nkind: Namespace\n---\napiVersion: v1\nkind: Service\n metadata: x\n",
		want: "registry/bad.yaml: document 3: line 7: mapping values are not allowed in this context",
		line: 7, doc: 3,
	},
	{
		name: "unterminated flow mapping reports its 1-based line",
		file: "f.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a\n",
		want: "f.yaml: document 1: line 3: did not find expected ',' or '}'",
		line: 3, doc: 1,
	},
	{
		name: "bad indentation in second document",
		file: "f.yaml",
		data: "kind: Namespace\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n - b\n",
		// yaml.v3 names the start of the block mapping it was parsing, not the bad line.
		want: "f.yaml: document 2: line 3: did not find expected key",
		line: 3, doc: 2,
	},
	{
		name: "decode error without a line falls back to the object's",
		file: "f.yaml",
		data: "kind: Namespace\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  <<: [1]\n",
		want: "f.yaml: document 2 (line 3): map merge requires map or sequence of maps as the value",
		line: 3, doc: 2,
	},
	{
		name: "type error carries the line",
		file: "t.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - port: eighty\n",
		want: "t.yaml: document 1: line 6: cannot unmarshal !!str `eighty`, want an integer",
		line: 6, doc: 1,
	},
	{
		name: "missing metadata.name",
		file: "n.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: prod\nspec: {}\n",
		want: "n.yaml: document 1 (line 3): metadata.name: required",
		line: 3, doc: 1,
	},
	{
		name: "List item error names the item",
		file: "l.yaml",
		data: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: ok}\n" +
			"- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n  spec:\n    clusterIPs: [10.0.0.1, 10.0.0.2]\n",
		want: `l.yaml: document 1 (line 11): items[1].spec.clusterIPs[1] "10.0.0.2": at most one IPv4 and one IPv6 cluster IP`,
		line: 11, doc: 1,
	},
	{name: "port out of range", file: "p.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - port: 80\n  - port: 70000\n",
		want: `spec.ports[1].port "70000": port must be between 1 and 65535`, sub: true, line: 7, doc: 1},
	{name: "service port missing", file: "p.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - name: http\n",
		want: `spec.ports[0].port: required`, sub: true, doc: 1},
	{name: "document not a mapping", file: "s.yaml", data: "- a\n- b\n",
		want: "s.yaml: document 1 (line 1): not a mapping", sub: true, line: 1, doc: 1},
	{name: "cluster IPs disagree", file: "c.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  clusterIP: 10.0.0.1\n  clusterIPs: [10.0.0.2]\n",
		want: `spec.clusterIPs[0] "10.0.0.2": must equal spec.clusterIP "10.0.0.1"`, sub: true, doc: 1},
	{name: "None with another cluster IP", file: "c.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  clusterIPs: [None, 10.0.0.2]\n",
		want: `None must be the only cluster IP`, sub: true, doc: 1},
	{name: "unknown service type", file: "c.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  type: Magic\n",
		want: `spec.type "Magic"`, sub: true, doc: 1},
	{name: "ExternalName without target", file: "c.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  type: ExternalName\n",
		want: `spec.externalName: required`, sub: true, doc: 1},
	{name: "invalid namespace", file: "c.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: Prod}\n",
		want: `metadata.namespace "Prod": not a valid DNS label`, sub: true, doc: 1},
	{name: "invalid service name", file: "c.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a.b}\n",
		want: `metadata.name "a.b": not a valid DNS name`, sub: true, doc: 1},
	{name: "bad creationTimestamp", file: "c.yaml",
		data: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, creationTimestamp: yesterday}\n",
		want: `metadata.creationTimestamp "yesterday": not an RFC 3339 time`, sub: true, doc: 2},
	{name: "EndpointSlice family mismatch", file: "e.yaml",
		data: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a}\naddressType: IPv4\nendpoints:\n- addresses: [\"fd00::1\"]\n",
		want: `endpoints[0].addresses[0] "fd00::1": not an IPv4 address`, sub: true, line: 6, doc: 1},
	{name: "EndpointSlice endpoint without addresses", file: "e.yaml",
		data: "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a}\nendpoints:\n- hostname: x\n",
		want: `endpoints[0].addresses: required`, sub: true, doc: 1},
	{name: "Pod bad IP", file: "pod.yaml",
		data: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus:\n  podIPs:\n  - ip: 10.0.0.1\n  - ip: \"fe80::1%eth0\"\n",
		want: `status.podIPs[1].ip "fe80::1%eth0": not an IP address`, sub: true, line: 7, doc: 1},
	{name: "Namespace without name", file: "ns.yaml", data: "apiVersion: v1\nkind: Namespace\n",
		want: `metadata.name: required`, sub: true, doc: 1},
	{name: "ServiceEntry without hosts", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  ports: []\n",
		want: `se.yaml: document 1 (line 4): spec.hosts: required`, line: 4, doc: 1},
	{name: "ExternalName not a host name", file: "ext.yaml",
		data: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  type: ExternalName\n  externalName: a..example.com\n",
		want: `ext.yaml: document 1 (line 6): spec.externalName "a..example.com": not a valid DNS name: empty label`,
		line: 6, doc: 1},
	{name: "ServiceEntry host with a label too long", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts:\n  - a.com\n  - " +
			strings.Repeat("x", 64) + ".com\n",
		want: `spec.hosts[1] "` + strings.Repeat("x", 64) + `.com": not a valid host name: label "` + strings.Repeat("x", 64) +
			`" is longer than 63 bytes`, sub: true, line: 7, doc: 1},
	// Unicode case mapping would turn the Kelvin sign into 'k'; DNS names fold ASCII only.
	{name: "ServiceEntry host with a non-ASCII letter", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [\"\u212a.example.com\"]\n",
		want: "spec.hosts[0] \"\u212a.example.com\": not a valid host name: label \"\u212a\" holds '\u212a'", sub: true, line: 5, doc: 1},
	{name: "ServiceEntry bare wildcard host", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [\"*\"]\n",
		want: `spec.hosts[0] "*": not a valid host name`, sub: true, doc: 1},
	{name: "ServiceEntry bad address", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.com]\n  addresses: [10.0.0.0/33]\n",
		want: `spec.addresses[0] "10.0.0.0/33": not an IP address or CIDR`, sub: true, doc: 1},
	{name: "ServiceEntry bad resolution", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.com]\n  resolution: dns\n",
		want: `spec.resolution "dns": want NONE`, sub: true, doc: 1},
	{name: "ServiceEntry bad location", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.com]\n  location: OUTSIDE\n",
		want: `spec.location "OUTSIDE"`, sub: true, doc: 1},
	{name: "ServiceEntry port zero", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.com]\n  ports: [{name: http}]\n",
		want: `spec.ports[0].number "0": port must be between 1 and 65535`, sub: true, doc: 1},
	{name: "ServiceEntry STATIC with host name endpoint", file: "se.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.com]\n  resolution: STATIC\n  endpoints:\n  - address: b.com\n",
		want: `spec.endpoints[0].address "b.com": resolution STATIC needs an IP address or unix:// path`, sub: true, line: 8, doc: 1},
	{name: "WorkloadEntry bad port", file: "we.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec:\n  address: 10.0.0.1\n  ports:\n    http: 80\n    grpc: 0\n",
		want: `spec.ports.grpc "0": port must be between 1 and 65535`, sub: true, line: 8, doc: 1},
	{name: "WorkloadEntry without address", file: "we.yaml",
		data: "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a}\nspec:\n  labels: {app: a}\n",
		want: `spec.address: required`, sub: true, doc: 1},
	{name: "duplicate key", file: "d.yaml",
		data: "apiVersion: v1\nkind: Namespace\nkind: Pod\n",
		want: `mapping key "kind" already defined`, sub: true, doc: 1},
}

func TestParseFileErrors(t *testing.T) {
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFile(tc.file, []byte(tc.data), nil)
			if err == nil {
				t.Fatalf("ParseFile succeeded with %s, want error %q", dump(got), tc.want)
			}
			if tc.sub && !strings.Contains(err.Error(), tc.want) || !tc.sub && err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.file+": document ") {
				t.Errorf("error %q does not start with the file and document", err)
			}
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("error is %T, want *ParseError", err)
			}
			if pe.Document != tc.doc {
				t.Errorf("Document = %d, want %d", pe.Document, tc.doc)
			}
			if tc.line != 0 && pe.Line != tc.line {
				t.Errorf("Line = %d, want %d", pe.Line, tc.line)
			}
			if pe.Line == 0 {
				t.Errorf("error %q has no line", err)
			}
		})
	}
}
