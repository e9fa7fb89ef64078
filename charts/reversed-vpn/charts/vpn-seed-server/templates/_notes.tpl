{{/* The next steps (NOTES.txt; the umbrella chart shows them too). */}}
{{- define "vpn-seed-server.notes" -}}
{{- $ns := include "vpn-seed-server.namespace" . -}}
{{- $s := .Values.global.shoot -}}
{{- $m := .Values.global.mode -}}
{{- $deploy := .Values.setup.kubeApiserverDeployment -}}
The seed side of shoot {{ $s.project }}/{{ $s.name }} is installed in {{ $ns }}: {{ if $m.reversed }}reversed VPN{{ else }}classic VPN (the seed dials {{ $s.classicEndpoint }}){{ end }}{{ if $m.ha }}, HA (2 servers){{ end }}.

1. Certificates. {{- if .Values.setup.enabled }}
   The pre-install hook Job vpn-shoot-setup issued them from a per-shoot CA kept in Secret ca-vpn; the
   CronJob vpn-shoot-setup renews them ({{ .Values.setup.schedule }}, at 80 % of their validity).
     kubectl -n {{ $ns }} logs job/vpn-shoot-setup
{{- else }}
   setup.enabled is false: create the Secrets yourself (vpn-seed-server-tls, kube-apiserver-http-proxy-client
   {{- if $m.ha }}, vpn-seed-client, kube-apiserver-http-proxy{{ end }}{{ if not $m.reversed }}, vpn-seed-server-proxy-tls{{ end }}),
   e.g. with `pnpm certs --namespace {{ $ns }}{{ if $m.ha }} --ha{{ end }}{{ if not $m.reversed }} --classic{{ end }}` (a development tool: it does not keep the CA).
{{- end }}

2. The shoot's kube-apiserver. {{- if and .Values.setup.enabled $deploy }}
   Wired by the same job: Deployment {{ $deploy }} got the flag
   --egress-selector-config-file=/etc/reversed-vpn/egress-selector/egress-selector-configuration.yaml, the mounts
   of ConfigMap kube-apiserver-egress-selector-configuration and Secret kube-apiserver-http-proxy-client, the pod
   label networking.reversed-vpn.dev/to-vpn-seed-server=allowed (the NetworkPolicy admits it){{ if $m.ha }} and the
   path-controller sidecar with its --init container{{ end }}. A renewed client certificate restarts it (checksum annotation).
     kubectl -n {{ $ns }} get deployment {{ $deploy }} -o jsonpath='{.spec.template.metadata.labels}'
{{- else }}
   Not wired by this chart: give the kube-apiserver container
     --egress-selector-config-file=/etc/reversed-vpn/egress-selector/egress-selector-configuration.yaml
   with ConfigMap kube-apiserver-egress-selector-configuration mounted at /etc/reversed-vpn/egress-selector,
   Secret kube-apiserver-http-proxy-client mounted at /srv/secrets/kube-apiserver-http-proxy-client, and the pod
   label networking.reversed-vpn.dev/to-vpn-seed-server=allowed.{{ if $m.ha }} HA: also the path-controller
   sidecar, its --init container and volumes (libs/k8s-render apiserverWiring lists them).{{ end }}
   kube-apiserver reads these files only at start: restart it after a certificate renewal.
{{- end }}

{{- if $m.reversed }}

3. The seed's entry point. Add this route to the sni-proxy chart's `routes.connect` (the operator
   publishes routes only for its own ShootVpns):
{{- if $m.ha }}
{{- range $i := until 2 }}
     "outbound|1194||vpn-seed-server-{{ $i }}.{{ $ns }}.svc.cluster.local": "vpn-seed-server-{{ $i }}.{{ $ns }}.svc.cluster.local:1194"
{{- end }}
{{- else }}
     "outbound|1194||vpn-seed-server.{{ $ns }}.svc.cluster.local": "vpn-seed-server.{{ $ns }}.svc.cluster.local:1194"
{{- end }}
   The shoot dials {{ $s.endpoint }}:8443: that name must resolve, inside the shoot, to sni-proxy's LoadBalancer.
{{- end }}

{{ if $m.reversed }}4{{ else }}3{{ end }}. The shoot side, in the shoot cluster, with the same global values:
{{- if and .Values.setup.enabled .Values.setup.shootKubeconfigSecret }}
   its certificate Secret ({{ ternary "vpn-shoot-client" "vpn-shoot-server" $m.reversed }} in kube-system) is applied there by the job (Secret {{ .Values.setup.shootKubeconfigSecret }}).
{{- else if .Values.setup.enabled }}
   copy its certificate Secret into the shoot first:
     kubectl -n {{ $ns }} get secret vpn-shoot-certificates -o jsonpath='{.data.objects\.json}' | base64 -d \
       | kubectl --context <shoot> apply -f -
{{- end }}
     helm --kube-context <shoot> install vpn-shoot charts/reversed-vpn/charts/vpn-shoot -n kube-system -f <these global values>
{{- if not $m.ha }}

Check the path into the shoot (a CONNECT through 9443, as the kube-apiserver makes it):
  helm test {{ .Release.Name }} -n {{ $ns }} --logs
{{- end }}
{{- include "vpn-seed-server.mappingNotes" . }}
{{- end }}

{{/* NOTES when the mapping is forced (issue 12): where each kind appears in the tunnel. */}}
{{- define "vpn-seed-server.mappingNotes" -}}
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
"vpn-seed-server started" (field mapping):
  kubectl -n {{ .Release.Namespace }} logs {{ ternary "statefulset" "deployment" $m.ha }}/vpn-seed-server | grep 'vpn-seed-server started'
{{- if not $m.reversed }}
WARNING: the classic direction does not translate yet: it refuses a mapping that translates, and the pods will not start.
{{- end }}
{{- end }}
{{- end }}
