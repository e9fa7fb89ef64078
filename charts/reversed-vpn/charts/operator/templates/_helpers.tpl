{{/* Name of the app (app.kubernetes.io/name): "operator" alone says nothing in a shared cluster. */}}
{{- define "operator.name" -}}
reversed-vpn-operator
{{- end }}

{{/* Name of the objects, ClusterRole and Lease: <release>-operator, or the release name when it already says operator. */}}
{{- define "operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "operator" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* chart-version, for helm.sh/chart. */}}
{{- define "operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels of every object and pod, then global.commonLabels (the schema keeps them off the standard keys). */}}
{{- define "operator.labels" -}}
helm.sh/chart: {{ include "operator.chart" . }}
app.kubernetes.io/name: {{ include "operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: reversed-vpn
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: name, instance, component (never the version: selectors are immutable). */}}
{{- define "operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is set. */}}
{{- define "operator.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry }}
{{- $name := .Values.image.repository }}
{{- if $registry }}{{ $name = printf "%s/%s" $registry $name }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $name .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $name (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* sni-proxy's namespace and the route ConfigMap it mounts (the sni-proxy chart of the same release computes the same name). */}}
{{- define "operator.sniProxyNamespace" -}}
{{- .Values.sniProxy.namespace | default .Release.Namespace }}
{{- end }}
{{- define "operator.routesConfigMap" -}}
{{- .Values.sniProxy.routesConfigMap | default (printf "%s-sni-proxy-operator-routes" .Release.Name) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The pod-level overrides: pull secrets (global first), priority class, security context, scheduling. */}}
{{- define "operator.podOverrides" -}}
{{- with concat (.Values.global.imagePullSecrets | default list) (.Values.imagePullSecrets | default list) }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
