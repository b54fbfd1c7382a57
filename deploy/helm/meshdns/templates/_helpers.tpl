{{/*
Every object of a release is named from meshdns.fullname: the release name when it already
says meshdns, else release-meshdns. Cluster-wide objects (ClusterRoles, the webhook
configuration) carry it too, so that two releases never collide.
*/}}
{{- define "meshdns.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshdns.fullname" -}}
{{- $name := include "meshdns.name" . -}}
{{- $full := ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) -}}
{{- .Values.fullnameOverride | default $full | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of a part of the release: (list $ "injector") gives meshdns-injector. */}}
{{- define "meshdns.partName" -}}
{{- printf "%s-%s" (include "meshdns.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of the pods of a component ((list $ "dns")), which its selectors match. */}}
{{- define "meshdns.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "meshdns.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The image of meshdns, also the one the injector puts into pods. */}}
{{- define "meshdns.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
A value as meshdns reads it in a flag. Numbers of a values file arrive as float64, which would
print 1000000 as 1e+06.
*/}}
{{- define "meshdns.flagValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
Flags from values ((list "flag-name" value) ...) as --flag=value, for the values that are not
null (one per item of a list), as a YAML list.
*/}}
{{- define "meshdns.flags" -}}
{{- $args := list -}}
{{- range . -}}
{{- $name := index . 0 -}}
{{- $v := index . 1 -}}
{{- if kindIs "slice" $v -}}
{{- range $v -}}
{{- $args = append $args (printf "--%s=%s" $name (include "meshdns.flagValue" .)) -}}
{{- end -}}
{{- else if not (kindIs "invalid" $v) -}}
{{- $args = append $args (printf "--%s=%s" $name (include "meshdns.flagValue" $v)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $args -}}
{{- end -}}

{{/*
The flags of `meshdns serve` that .Values.serve sets, then serve.extraArgs: the cluster
mode's Deployment runs them, the injector passes them to the sidecars. For agents of a
controller ((list $ true)), the flags of the Kubernetes source are left out: the controller
watches the API server with them, and serve --controller refuses them; a node agent of a
controller ((list $ true true)) keeps --kube-api-qps and --kube-api-burst, for its pod watch.
*/}}
{{- define "meshdns.serveFlagsOf" -}}
{{- $s := (index . 0).Values.serve -}}
{{- $kube := not (index . 1) -}}
{{- /* A node agent of a controller still watches its node's pods: it keeps the limits of its requests. */ -}}
{{- $api := or $kube (and (gt (len .) 2) (index . 2)) -}}
{{- $flags := include "meshdns.flags" (list
  (list "cluster-domain" $s.clusterDomain)
  (list "ttl" $s.ttl)
  (list "upstream" $s.upstreams)
  (list "upstream-policy" $s.upstreamPolicy)
  (list "forward-unknown-cluster-names" $s.forwardUnknownClusterNames)
  (list "allow-clients" $s.allowClients)
  (list "max-udp-size" $s.maxUDPSize)
  (list "namespaces" (ternary $s.namespaces list $kube))
  (list "watch-pods" $s.watchPods)
  (list "kube-api-qps" (ternary $s.kubeAPIQPS nil $api))
  (list "kube-api-burst" (ternary $s.kubeAPIBurst nil $api))
  (list "leader-elect-lease-duration" (ternary $s.leaderElectLeaseDuration nil $kube))
  (list "cache-size" $s.cache.size)
  (list "cache-max-bytes" $s.cache.maxBytes)
  (list "cache-min-ttl" $s.cache.minTTL)
  (list "cache-max-ttl" $s.cache.maxTTL)
  (list "serve-stale" $s.cache.serveStale)
  (list "vip-cidr" $s.vips.cidr)
  (list "vip-cidr6" $s.vips.cidr6)
  (list "vip-quarantine" $s.vips.quarantine)
  (list "chaos-version" $s.chaos.version)
  (list "chaos-id" $s.chaos.id)
  (list "log-level" $s.log.level)
  (list "log-format" $s.log.format)
  (list "log-queries" $s.log.queries)
) | fromYamlArray -}}
{{- concat $flags $s.extraArgs | toYaml -}}
{{- end -}}

{{- define "meshdns.serveFlags" -}}
{{- include "meshdns.serveFlagsOf" (list . false) -}}
{{- end -}}

{{/* The arguments of `meshdns serve` in cluster mode. */}}
{{- define "meshdns.serveArgs" -}}
{{- $fixed := list "serve" "--listen=0.0.0.0:5353" "--admin=$(POD_IP):15054" "--resolv-conf=/etc/resolv.conf" -}}
{{- concat $fixed (include "meshdns.serveFlags" . | fromYamlArray) | toYaml -}}
{{- end -}}

{{/*
The arguments of `meshdns injector` (docs/injection.md). The sidecars get the serve flags of
the values through --sidecar-args, which the injector splits at spaces: a value with a space
cannot be passed that way.
*/}}
{{- define "meshdns.injectorArgs" -}}
{{- $i := .Values.injector -}}
{{- $args := list "injector" "--listen=:15443" "--tls-cert=/etc/meshdns/tls/tls.crt" "--tls-key=/etc/meshdns/tls/tls.key" "--admin=:15054" (printf "--image=%s" (include "meshdns.image" .)) -}}
{{- with $i.captureImage.repository -}}
{{- $args = append $args (printf "--capture-image=%s:%s" . ($i.captureImage.tag | default $.Chart.AppVersion)) -}}
{{- end -}}
{{- $args = concat $args (include "meshdns.flags" (list
  (list "exempt-uid" $i.exemptUID)
  (list "proxy-port" $i.proxyPort)
  (list "sidecar-admin" $i.sidecarAdmin)
  (list "sidecar-cpu" $i.sidecarResources.cpu)
  (list "sidecar-memory" $i.sidecarResources.memory)
  (list "sidecar-memory-limit" $i.sidecarResources.memoryLimit)
  (list "capture-args" $i.captureArgs)
  (list "log-level" $i.log.level)
  (list "log-format" $i.log.format)
) | fromYamlArray) -}}
{{- $agents := include "meshdns.injectorAgents" . | eq "true" -}}
{{- if $agents -}}
{{- $args = append $args (printf "--controller=%s" $i.controller.address) -}}
{{- if $i.controller.caBundle -}}
{{- $args = append $args "--controller-ca=/etc/meshdns/controller-ca/ca.crt" -}}
{{- else -}}
{{- $args = append $args (printf "--controller-ca-configmap=%s" $i.controller.caConfigMap) -}}
{{- end -}}
{{- with $i.controller.tokenAudience -}}
{{- $args = append $args (printf "--token-audience=%s" .) -}}
{{- end -}}
{{- end -}}
{{- range concat (include "meshdns.serveFlagsOf" (list . $agents) | fromYamlArray) $i.sidecarArgs -}}
{{- if contains " " . -}}
{{- fail (printf "serve or injector.sidecarArgs: %q has a space; the injector splits sidecar arguments at spaces" .) -}}
{{- end -}}
{{- $args = append $args (printf "--sidecar-args=%s" .) -}}
{{- end -}}
{{- concat $args $i.extraArgs | toYaml -}}
{{- end -}}

{{/*
The arguments of `meshdns controller` (docs/controller.md): its own values, then those of
serve that the controller shares (cluster domain, the Kubernetes source, VIP pools, logging),
so that one values file gives the controller and its agents the same VIP pools.
*/}}
{{- define "meshdns.controllerArgs" -}}
{{- $c := .Values.controller -}}
{{- $s := .Values.serve -}}
{{- $args := list "controller" (printf "--xds-listen=:%d" (int $c.xdsPort)) "--tls-cert=/etc/meshdns/tls/tls.crt" "--tls-key=/etc/meshdns/tls/tls.key" "--admin=$(POD_IP):15054" -}}
{{- with $c.stateDir -}}
{{- $args = append $args (printf "--state-dir=%s" .) -}}
{{- end -}}
{{- $args = concat $args (include "meshdns.flags" (list
  (list "token-audience" $c.tokenAudience)
  (list "full-view" $c.fullView)
  (list "cluster-domain" $s.clusterDomain)
  (list "namespaces" $s.namespaces)
  (list "kube-api-qps" $s.kubeAPIQPS)
  (list "kube-api-burst" $s.kubeAPIBurst)
  (list "leader-elect-lease-duration" $s.leaderElectLeaseDuration)
  (list "vip-cidr" $s.vips.cidr)
  (list "vip-cidr6" $s.vips.cidr6)
  (list "vip-quarantine" $s.vips.quarantine)
  (list "log-level" $s.log.level)
  (list "log-format" $s.log.format)
) | fromYamlArray) -}}
{{- concat $args $c.extraArgs | toYaml -}}
{{- end -}}

{{/* The Secret of the controller's key pair: one of the user's, or the chart's. */}}
{{- define "meshdns.controllerTLSSecret" -}}
{{- .Values.controller.tls.existingSecret | default (include "meshdns.partName" (list . "tls")) -}}
{{- end -}}

{{/* The Secret of the injector's key pair: one of the user's, or the chart's. */}}
{{- define "meshdns.injectorTLSSecret" -}}
{{- .Values.injector.tls.existingSecret | default (include "meshdns.partName" (list . "tls")) -}}
{{- end -}}

{{/*
"true" when the injected sidecars are agents of a controller (injector.controller.address);
stops helm when the controller's CA is not given exactly one way.
*/}}
{{- define "meshdns.injectorAgents" -}}
{{- include "meshdns.controllerAgent" (list .Values.injector.controller "injector.controller") -}}
{{- end -}}

{{/*
"true" when the values of a controller ((list .Values.injector.controller "injector.controller"))
name one, "false" when they do not; stops helm when the controller's CA is not given exactly
one way.
*/}}
{{- define "meshdns.controllerAgent" -}}
{{- $c := index . 0 -}}
{{- $key := index . 1 -}}
{{- if $c.address -}}
{{- if and $c.caBundle $c.caConfigMap -}}
{{- fail (printf "%s: give caBundle or caConfigMap, not both" $key) -}}
{{- else if not (or $c.caBundle $c.caConfigMap) -}}
{{- fail (printf "%s.address: needs caBundle or caConfigMap, the CA of the controller's certificate (it serves TLS only)" $key) -}}
{{- end -}}
true
{{- else if or $c.caBundle $c.caConfigMap $c.tokenAudience -}}
{{- fail (printf "%s: caBundle, caConfigMap and tokenAudience need address" $key) -}}
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/*
What meshdns reads from the API server to answer for the cluster (README, "Running in a
cluster"): the cluster mode's ClusterRole and the injected sidecars' share it.
*/}}
{{- define "meshdns.readRules" -}}
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.istio.io]
  resources: [serviceentries, workloadentries]
  verbs: [get, list, watch]
# To notice Istio's CRDs being installed or removed (meshdns watches only their two names).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end -}}

{{/*
The scheduling and pod settings shared by the modes' pod templates, from a mode's values
((list $ .Values.cluster)).
*/}}
{{- define "meshdns.podScheduling" -}}
{{- $root := index . 0 -}}
{{- $v := index . 1 -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The container security context of every mode: meshdns needs no privilege. */}}
{{- define "meshdns.securityContext" -}}
runAsNonRoot: true
runAsUser: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/*
The PodDisruptionBudget of a mode's workload
((dict "root" $ "component" "dns" "pdb" .Values.cluster.podDisruptionBudget)).
*/}}
{{- define "meshdns.pdb" -}}
{{- if .pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "meshdns.fullname" .root }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "meshdns.selectorLabels" (list .root .component) | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "meshdns.selectorLabels" (list .root .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{/*
With serviceMonitor.enabled, a headless Service naming the admin port of a component's pods
and a ServiceMonitor of it ((list $ "dns")). Headless: Prometheus scrapes the pods, and the
admin endpoint gets no cluster IP of its own. Pods that declare no port named admin give its
number ((list $ "node-agent" 15054)).
*/}}
{{- define "meshdns.serviceMonitor" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $port := 15054 -}}
{{- $target := "admin" -}}
{{- if gt (len .) 2 -}}
{{- $port = int (index . 2) -}}
{{- $target = $port -}}
{{- end -}}
{{- if $root.Values.serviceMonitor.enabled }}
{{- $name := include "meshdns.partName" (list $root "metrics") }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "meshdns.selectorLabels" (list $root $component) | nindent 4 }}
    meshdns.io/metrics: "true"
spec:
  clusterIP: None
  selector:
    {{- include "meshdns.selectorLabels" (list $root $component) | nindent 4 }}
  ports:
    - {name: admin, port: {{ $port }}, targetPort: {{ $target }}, protocol: TCP}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "meshdns.selectorLabels" (list $root $component) | nindent 4 }}
    {{- with $root.Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "meshdns.selectorLabels" (list $root $component) | nindent 6 }}
      meshdns.io/metrics: "true"
  endpoints:
    - port: admin
      path: /metrics
      {{- with $root.Values.serviceMonitor.interval }}
      interval: {{ . }}
      {{- end }}
{{- end }}
{{- end -}}

{{/*
The cluster DNS Service IPs of node-agent mode, as a YAML list: nodeAgent.clusterDNS, else the
cluster IPs of Service kube-system/kube-dns (read at install; helm template cannot read it).
At most one per family, as capture install --node takes them.
*/}}
{{- define "meshdns.clusterDNS" -}}
{{- $ips := .Values.nodeAgent.clusterDNS -}}
{{- if not $ips -}}
{{- with lookup "v1" "Service" "kube-system" "kube-dns" -}}
{{- $ips = .spec.clusterIPs | default (list .spec.clusterIP) -}}
{{- end -}}
{{- end -}}
{{- if not $ips -}}
{{- fail "nodeAgent.clusterDNS: required: the cluster DNS Service IPs that pods' resolv.conf names (the kubelet's --cluster-dns); without it the chart takes those of Service kube-system/kube-dns, which it could not read" -}}
{{- end -}}
{{- $v6 := 0 -}}
{{- range $ips -}}
{{- if contains ":" . -}}
{{- $v6 = add1 $v6 -}}
{{- end -}}
{{- end -}}
{{- if or (gt $v6 1) (gt (sub (len $ips) $v6) 1) -}}
{{- fail (printf "nodeAgent.clusterDNS: %v: at most one IPv4 and one IPv6 address" $ips) -}}
{{- end -}}
{{- toYaml $ips -}}
{{- end -}}

{{/* An address and a port as a flag takes them: 10.96.0.10:53, [fd00::a]:53. */}}
{{- define "meshdns.hostPort" -}}
{{- $ip := index . 0 -}}
{{- if contains ":" $ip -}}
{{- printf "[%s]:%v" $ip (index . 1) -}}
{{- else -}}
{{- printf "%s:%v" $ip (index . 1) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the node agents take their names from a controller (nodeAgent.controller). */}}
{{- define "meshdns.nodeAgentOfController" -}}
{{- include "meshdns.controllerAgent" (list .Values.nodeAgent.controller "nodeAgent.controller") -}}
{{- end -}}

{{/* Where a node agent of a controller finds its token and the controller's CA. */}}
{{- define "meshdns.nodeAgentControllerDir" -}}
/var/run/secrets/meshdns
{{- end -}}

{{/*
The arguments of the node agent's init container, `meshdns capture install --node`
(docs/capture.md, Node): the cluster DNS addresses and the local ones, which serve listens on.
*/}}
{{- define "meshdns.nodeCaptureArgs" -}}
{{- $n := .Values.nodeAgent -}}
{{- $args := list "capture" "install" "--node" (printf "--cluster-dns=%s" (include "meshdns.clusterDNS" . | fromYamlArray | join ",")) (printf "--local-ip=%s" (join "," $n.localIPs)) -}}
{{- concat $args $n.captureArgs | toYaml -}}
{{- end -}}

{{/*
The arguments of the node agent's `meshdns serve --node-agent` (docs/nodeagent.md): port 53 of
the cluster DNS and local addresses (capture sends the pods' queries there), the admin
endpoint on the node's address, the controller's flags when it is one's agent, then the serve
values.
*/}}
{{- define "meshdns.nodeAgentServeArgs" -}}
{{- $n := .Values.nodeAgent -}}
{{- $args := list "serve" "--node-agent" "--node-name=$(NODE_NAME)" -}}
{{- range concat (include "meshdns.clusterDNS" . | fromYamlArray) $n.localIPs -}}
{{- $args = append $args (printf "--listen=%s" (include "meshdns.hostPort" (list . 53))) -}}
{{- end -}}
{{- $args = append $args (printf "--admin=$(HOST_IP):%d" (int $n.adminPort)) -}}
{{- $agent := include "meshdns.nodeAgentOfController" . | eq "true" -}}
{{- if $agent -}}
{{- $dir := include "meshdns.nodeAgentControllerDir" . -}}
{{- $args = concat $args (list (printf "--controller=%s" $n.controller.address) (printf "--controller-ca=%s/ca.crt" $dir) (printf "--token-file=%s/token" $dir) "--state-dir=/var/lib/meshdns") -}}
{{- end -}}
{{- concat $args (include "meshdns.serveFlagsOf" (list . $agent true) | fromYamlArray) | toYaml -}}
{{- end -}}
