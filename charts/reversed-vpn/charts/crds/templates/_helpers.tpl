{{/* Name of the chart's app (app.kubernetes.io/name). */}}
{{- define "crds.name" -}}
reversed-vpn-crds
{{- end }}

{{/* chart-version, for helm.sh/chart. */}}
{{- define "crds.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard labels of every object, then global.commonLabels (the schema keeps them off the standard keys). */}}
{{- define "crds.labels" -}}
helm.sh/chart: {{ include "crds.chart" . }}
app.kubernetes.io/name: {{ include "crds.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: crds
app.kubernetes.io/part-of: reversed-vpn
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
