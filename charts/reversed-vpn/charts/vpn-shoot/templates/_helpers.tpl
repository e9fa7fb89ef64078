{{/*
  Names are fixed, not release-derived: the HA certificates are named after the pods (vpn-shoot-<i>),
  and the operator and the setup job put the certificate Secret next to a vpn-shoot of this name.
*/}}
{{- define "vpn-shoot.name" -}}
vpn-shoot
{{- end }}

{{/* chart-version, for helm.sh/chart. */}}
{{- define "vpn-shoot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels of every object and pod, then global.commonLabels (the schema keeps them off the standard keys). */}}
{{- define "vpn-shoot.labels" -}}
helm.sh/chart: {{ include "vpn-shoot.chart" . }}
app.kubernetes.io/name: {{ include "vpn-shoot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: shoot-side
app.kubernetes.io/part-of: reversed-vpn
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: name, instance, component (never the version). */}}
{{- define "vpn-shoot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vpn-shoot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: shoot-side
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is set. */}}
{{- define "vpn-shoot.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry }}
{{- $name := .Values.image.repository }}
{{- if $registry }}{{ $name = printf "%s/%s" $registry $name }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $name .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $name (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The certificate Secret vpn-shoot mounts (put there by the operator or the seed's setup job). */}}
{{- define "vpn-shoot.secret" -}}
{{- ternary "vpn-shoot-client" "vpn-shoot-server" .Values.global.mode.reversed }}
{{- end }}

{{/* The shoot's networks as the apps read them (vpn2 names); the seed's other networks and the mapping settings only when set (libs/k8s-render mappingEnv); NAMESPACE is the control plane's, in the seed. */}}
{{- define "vpn-shoot.networkEnv" -}}
{{- $n := .Values.global.shoot.networks -}}
- name: IP_FAMILIES
  value: {{ join "," $n.ipFamilies | quote }}
- name: VPN_NETWORK
  value: {{ $n.vpn | quote }}
- name: SHOOT_SERVICE_NETWORKS
  value: {{ join "," $n.services | quote }}
- name: SHOOT_POD_NETWORKS
  value: {{ join "," $n.pods | quote }}
- name: SHOOT_NODE_NETWORKS
  value: {{ join "," $n.nodes | quote }}
- name: SEED_POD_NETWORK
  value: {{ $n.seedPods | quote }}
{{- with $n.seedNodes }}
- name: SEED_NODE_NETWORKS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $n.seedServices }}
- name: SEED_SERVICE_NETWORKS
  value: {{ join "," . | quote }}
{{- end }}
{{- $m := $n.mapping | default dict }}
{{- with $m.mode }}
- name: NETWORK_MAPPING
  value: {{ . | quote }}
{{- end }}
{{- $v6 := $m.ipv6 | default dict }}
{{- range list (list "seedPods" "MAPPED_SEED_POD_NETWORK_V6") (list "shootNodes" "MAPPED_SHOOT_NODE_NETWORK_V6") (list "shootServices" "MAPPED_SHOOT_SERVICE_NETWORK_V6") (list "shootPods" "MAPPED_SHOOT_POD_NETWORK_V6") }}
{{- $env := index . 1 }}
{{- with index $v6 (index . 0) }}
- name: {{ $env }}
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: NAMESPACE
  value: {{ required "global.shoot.namespace (the shoot's control-plane namespace in the seed) is required" .Values.global.shoot.namespace }}
{{- end }}
