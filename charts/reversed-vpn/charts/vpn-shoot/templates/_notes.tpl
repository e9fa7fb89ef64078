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
{{- include "vpn-shoot.mappingNotes" . }}
{{- end }}

{{/* NOTES when the mapping is forced (issue 12): where each kind appears in the tunnel. */}}
{{- define "vpn-shoot.mappingNotes" -}}
{{- $s := .Values.global.shoot -}}
{{- $m := .Values.global.mode -}}
{{- $map := $s.networks.mapping | default dict -}}
{{- $v6 := $map.ipv6 | default dict -}}
{{- if eq ($map.mode | default "") "always" }}

Network mapping is forced (global.shoot.networks.mapping.mode=always): inside the tunnel seed pods appear as
241.0.0.0/8, shoot nodes as 242.0.0.0/8, services as 243.0.0.0/8, pods as 244.0.0.0/8
{{- if has "IPv6" $s.networks.ipFamilies }} (IPv6: {{ $v6.seedPods | default "fd6d:6170:100::/40" }}, {{ $v6.shootNodes | default "fd6d:6170:200::/40" }}, {{ $v6.shootServices | default "fd6d:6170:300::/40" }}, {{ $v6.shootPods | default "fd6d:6170:400::/40" }}){{ end }},
each network packed into its range largest first, host bits kept; the kube-apiserver still names the real addresses.
The seed side and the shoot side need the same global.shoot.networks. The mapping in effect is in the log line
"vpn-shoot started" (field mapping):
  kubectl -n {{ .Release.Namespace }} logs {{ ternary "statefulset" "deployment" $m.ha }}/vpn-shoot | grep 'vpn-shoot started'
{{- if not $m.reversed }}
WARNING: the classic direction does not translate yet: it refuses a mapping that translates, and the pods will not start.
{{- end }}
{{- end }}
{{- end }}
