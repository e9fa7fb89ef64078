{{/* The next steps (NOTES.txt; the umbrella chart shows them too). */}}
{{- define "operator.notes" -}}
The reversed-vpn operator runs in {{ .Release.Namespace }} (Deployment {{ include "operator.fullname" . }}, {{ .Values.replicas }} replica(s), leader election by Lease {{ include "operator.fullname" . }}).
It needs the ShootVpn CRD (the crds chart; the umbrella installs it with the operator).

Per shoot: apply a ShootVpn in the shoot's control-plane namespace (example in the chart's README). The
operator renders and applies the seed side, issues and renews the certificates,{{ if .Values.kubeApiserverDeployment }} wires the shoot's
kube-apiserver (Deployment {{ .Values.kubeApiserverDeployment }} in that namespace),{{ end }} publishes the sni-proxy route into
ConfigMap {{ include "operator.sniProxyNamespace" . }}/{{ include "operator.routesConfigMap" . }}, and applies the shoot side into the shoot
(`spec.shootAccess.kubeconfigSecretRef`) or leaves it in Secret vpn-shoot-resources.

Check:
  kubectl get shootvpns -A
  kubectl -n {{ .Release.Namespace }} logs deployment/{{ include "operator.fullname" . }}
{{- end }}
