{{/* The next steps (NOTES.txt; the umbrella chart shows them too). */}}
{{- define "vpn-shoot.notes" -}}
{{- $s := .Values.global.shoot -}}
{{- $m := .Values.global.mode -}}
{{- $kind := ternary "statefulset" "deployment" $m.ha -}}
vpn-shoot for shoot {{ $s.project }}/{{ $s.name }} is installed in {{ .Release.Namespace }}{{ if $m.ha }} (HA: 2 clients, each linked to both seed servers){{ end }}.
{{- if ne .Release.Namespace "kube-system" }}
WARNING: the operator and the seed's setup job put vpn-shoot's certificate Secret into kube-system, not {{ .Release.Namespace }}.
{{- end }}
{{- if $m.reversed }}

It dials {{ $s.endpoint }}:8443 (the seed's sni-proxy) with the header
  X-Gardener-Destination: outbound|1194||vpn-seed-server.{{ $s.namespace }}.svc.cluster.local
so {{ $s.endpoint }} must resolve inside the shoot to sni-proxy's LoadBalancer address (the sni-proxy chart's NOTES).
{{- else }}

Classic direction: the seed dials this LoadBalancer on 4314. Its address is global.shoot.classicEndpoint of the
seed side (vpn-seed-server release):
  kubectl -n {{ .Release.Namespace }} get service vpn-shoot -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}{":4314\n"}'
{{- end }}

It mounts Secret {{ include "vpn-shoot.secret" . }}, made by the operator or the seed's setup job (until it exists the pod waits).

Check:
  kubectl -n {{ .Release.Namespace }} rollout status {{ $kind }} vpn-shoot
  kubectl -n {{ .Release.Namespace }} logs {{ $kind }}/vpn-shoot      # "tunnel to the seed is up" once connected
Through the tunnel, from the seed: `kubectl logs` / `kubectl exec` against the shoot's kube-apiserver work.
{{- end }}
