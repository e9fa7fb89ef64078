{{/* Name of the app (app.kubernetes.io/name); fixed: the seed servers' NetworkPolicies admit it by this label. */}}
{{- define "sni-proxy.name" -}}
sni-proxy
{{- end }}

{{/* Name of the objects: <release>-sni-proxy, or the release name when it already says sni-proxy. */}}
{{- define "sni-proxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "sni-proxy" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-sni-proxy" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* chart-version, for helm.sh/chart. */}}
{{- define "sni-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels of every object and pod, then global.commonLabels (the schema keeps them off the standard keys). */}}
{{- define "sni-proxy.labels" -}}
helm.sh/chart: {{ include "sni-proxy.chart" . }}
app.kubernetes.io/name: {{ include "sni-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: entry-point
app.kubernetes.io/part-of: reversed-vpn
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: name, instance, component (never the version: selectors are immutable). */}}
{{- define "sni-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sni-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: entry-point
{{- end }}

{{/* registry/repository:tag, or @digest when a digest is set. */}}
{{- define "sni-proxy.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry }}
{{- $name := .Values.image.repository }}
{{- if $registry }}{{ $name = printf "%s/%s" $registry $name }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $name .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $name (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The static route ConfigMap (values.routes). */}}
{{- define "sni-proxy.routesConfigMap" -}}
{{- printf "%s-routes" (include "sni-proxy.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The operator's route ConfigMap: what the operator chart of the same release writes. */}}
{{- define "sni-proxy.operatorRoutesConfigMap" -}}
{{- .Values.operatorRoutes.configMap | default (printf "%s-sni-proxy-operator-routes" .Release.Name) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The pod-level overrides: pull secrets (global first), priority class, security context, scheduling. */}}
{{- define "sni-proxy.podOverrides" -}}
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
