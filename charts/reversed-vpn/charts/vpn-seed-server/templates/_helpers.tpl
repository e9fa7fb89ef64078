{{/*
  Names are fixed, not release-derived: they are part of the protocol (the certificates' DNS names,
  the egress selector's URL, sni-proxy's route header, the HA servers' per-pod Services).
*/}}
{{- define "vpn-seed-server.name" -}}
vpn-seed-server
{{- end }}

{{/* chart-version, for helm.sh/chart. */}}
{{- define "vpn-seed-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The shoot's control-plane namespace: global.shoot.namespace, which must be the release namespace. */}}
{{- define "vpn-seed-server.namespace" -}}
{{- $ns := .Values.global.shoot.namespace | default .Release.Namespace }}
{{- if ne $ns .Release.Namespace }}
{{- fail (printf "global.shoot.namespace is %s but the release namespace is %s: install this chart into the shoot's control-plane namespace (-n %s)" $ns .Release.Namespace $ns) }}
{{- end }}
{{- $ns }}
{{- end }}

{{/* Standard labels: include with (dict "ctx" . "component" "<component>"); global.commonLabels last (the schema keeps them off the standard keys). */}}
{{- define "vpn-seed-server.labels" -}}
helm.sh/chart: {{ include "vpn-seed-server.chart" .ctx }}
app.kubernetes.io/name: {{ include "vpn-seed-server.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: reversed-vpn
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the seed server pods: name, instance, component (never the version). */}}
{{- define "vpn-seed-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vpn-seed-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: seed-server
{{- end }}

{{/* An image reference from (dict "image" <values.image> "ctx" .): registry/repository:tag, or @digest. */}}
{{- define "vpn-seed-server.imageRef" -}}
{{- $registry := .ctx.Values.global.imageRegistry | default .image.registry }}
{{- $name := .image.repository }}
{{- if $registry }}{{ $name = printf "%s/%s" $registry $name }}{{ end }}
{{- if .image.digest }}
{{- printf "%s@%s" $name .image.digest }}
{{- else }}
{{- printf "%s:%s" $name (.image.tag | default .ctx.Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "vpn-seed-server.image" -}}
{{- include "vpn-seed-server.imageRef" (dict "image" .Values.image "ctx" .) }}
{{- end }}

{{/* The shoot-side image named in the setup job's spec file (informational: the job does not run it). */}}
{{- define "vpn-seed-server.vpnShootImage" -}}
{{- include "vpn-seed-server.imageRef" (dict "image" (dict "registry" .Values.image.registry "repository" "reversed-vpn/vpn-shoot") "ctx" .) }}
{{- end }}

{{/* Pull secrets (global first) and scheduling: every pod of this chart gets them. */}}
{{- define "vpn-seed-server.scheduling" -}}
{{- with concat (.Values.global.imagePullSecrets | default list) (.Values.imagePullSecrets | default list) }}
imagePullSecrets:
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

{{/* The security context of the setup and test pods: non-root, seccomp RuntimeDefault. */}}
{{- define "vpn-seed-server.nonRootPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "vpn-seed-server.nonRootContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/* The shoot's networks as the apps read them (vpn2 names); the seed's other networks and the mapping settings only when set (libs/k8s-render mappingEnv). */}}
{{- define "vpn-seed-server.networkEnv" -}}
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
  value: {{ include "vpn-seed-server.namespace" . }}
{{- end }}

{{/*
  The `kubernetes` Service inside the shoot: the first address of the first service network, on 443
  (the network address's last group is even below /32 and /128, so +1 never carries).
*/}}
{{- define "vpn-seed-server.kubernetesService" -}}
{{- $addr := index (splitList "/" (first .Values.global.shoot.networks.services)) 0 }}
{{- if contains ":" $addr }}
{{- if hasSuffix "::" $addr }}
{{- printf "[%s1]:443" $addr }}
{{- else }}
{{- $next := dict "0" "1" "2" "3" "4" "5" "6" "7" "8" "9" "a" "b" "c" "d" "e" "f" "A" "B" "C" "D" "E" "F" }}
{{- printf "[%s%s]:443" (trimSuffix (substr (sub (len $addr) 1 | int) (len $addr) $addr) $addr) (get $next (substr (sub (len $addr) 1 | int) (len $addr) $addr)) }}
{{- end }}
{{- else }}
{{- $o := splitList "." $addr }}
{{- printf "%s.%s.%s.%d:443" (index $o 0) (index $o 1) (index $o 2) (add1 (atoi (index $o 3))) }}
{{- end }}
{{- end }}

{{/* The file the setup job reads: {spec, mode}, the same JSON libs/k8s-render's shootSpecFile writes. */}}
{{- define "vpn-seed-server.shootSpec" -}}
{{- $s := .Values.global.shoot }}
{{- $spec := dict
  "shoot" (dict "name" $s.name "project" $s.project)
  "namespace" (include "vpn-seed-server.namespace" .)
  "networks" $s.networks
  "highAvailability" (dict "failureTolerance" $s.failureTolerance)
  "annotations" (dict)
  "endpoint" $s.endpoint
  "images" (dict "vpnSeedServer" (include "vpn-seed-server.image" .) "vpnShoot" (include "vpn-seed-server.vpnShootImage" .) "pathController" (include "vpn-seed-server.imageRef" (dict "image" .Values.pathController.image "ctx" .)))
}}
{{- if $s.classicEndpoint }}{{ $_ := set $spec "classicEndpoint" $s.classicEndpoint }}{{ end }}
{{- dict "spec" $spec "mode" (dict "reversed" .Values.global.mode.reversed "ha" .Values.global.mode.ha) | toPrettyJson }}
{{- end }}

{{/* The Role of shoot-setup/-teardown: certificate Secrets, and patching the one kube-apiserver Deployment. */}}
{{- define "vpn-seed-server.setupRules" -}}
# read, apply server-side (patch; create when absent), list by label to prune, delete
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, create, patch, delete]
{{- with .Values.setup.kubeApiserverDeployment }}
# the wiring: read the Deployment, send a guarded JSON patch
- apiGroups: [apps]
  resources: [deployments]
  resourceNames: [{{ . }}]
  verbs: [get, patch]
{{- end }}
{{- end }}

{{/* A Job spec running the operator image one-shot: (dict "ctx" . "command" "shoot-setup|shoot-teardown" "account" <ServiceAccount and spec ConfigMap>). */}}
{{- define "vpn-seed-server.setupJobSpec" -}}
{{- $ := .ctx -}}
backoffLimit: 2
activeDeadlineSeconds: 600
ttlSecondsAfterFinished: 86400
template:
  metadata:
    labels:
      {{- include "vpn-seed-server.labels" (dict "ctx" $ "component" "certificates") | nindent 6 }}
  spec:
    serviceAccountName: {{ .account }}
    restartPolicy: Never
    enableServiceLinks: false
    {{- with include "vpn-seed-server.scheduling" $ }}
    {{- trim . | nindent 4 }}
    {{- end }}
    securityContext:
      {{- include "vpn-seed-server.nonRootPod" $ | nindent 6 }}
    containers:
      - name: {{ .command }}
        image: {{ include "vpn-seed-server.imageRef" (dict "image" $.Values.setup.image "ctx" $) }}
        imagePullPolicy: {{ $.Values.setup.image.pullPolicy }}
        args: [{{ .command }}]
        env:
          - name: NAMESPACE
            value: {{ include "vpn-seed-server.namespace" $ }}
          - name: SHOOT_SPEC_FILE
            value: /etc/vpn-shoot-setup/spec.json
          # empty: do not wire
          - name: KUBE_APISERVER_DEPLOYMENT
            value: {{ $.Values.setup.kubeApiserverDeployment | quote }}
          {{- if $.Values.setup.shootKubeconfigSecret }}
          - name: SHOOT_KUBECONFIG_FILE
            value: /srv/secrets/shoot-kubeconfig/kubeconfig
          {{- end }}
        {{- with $.Values.setup.resources }}
        resources:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        securityContext:
          {{- include "vpn-seed-server.nonRootContainer" $ | nindent 10 }}
        volumeMounts:
          - name: spec
            mountPath: /etc/vpn-shoot-setup
            readOnly: true
          {{- if $.Values.setup.shootKubeconfigSecret }}
          - name: shoot-kubeconfig
            mountPath: /srv/secrets/shoot-kubeconfig
            readOnly: true
          {{- end }}
    volumes:
      - name: spec
        configMap:
          name: {{ .account }}
      {{- with $.Values.setup.shootKubeconfigSecret }}
      - name: shoot-kubeconfig
        secret:
          secretName: {{ . }}
          defaultMode: 256 # 0400
      {{- end }}
{{- end }}
