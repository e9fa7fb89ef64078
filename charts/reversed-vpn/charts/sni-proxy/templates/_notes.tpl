{{/* The next steps (NOTES.txt; the umbrella chart shows them too). */}}
{{- define "sni-proxy.notes" -}}
{{- $svc := include "sni-proxy.fullname" . -}}
sni-proxy, the seed's entry point, is installed in {{ .Release.Namespace }} (Service {{ $svc }}, {{ .Values.service.type }}).

1. The entry address (once the load balancer has one):

     kubectl -n {{ .Release.Namespace }} get service {{ $svc }} \
       -o jsonpath='{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}{"\n"}'

2. DNS: every shoot's vpn-shoot dials `global.shoot.endpoint` on port 8443 (the vpn-shoot chart's value,
   e.g. api.<shoot>.<project>.<seed domain>). Make those names resolve, from inside the shoots, to the
   address above — a wildcard record such as *.<seed domain> for the whole seed. Port 443 routes TLS by
   server name (add `routes.sni` entries for the shoots' kube-apiservers).

3. Routes: {{ if .Values.operatorRoutes.enabled }}the operator publishes one per ShootVpn in ConfigMap {{ include "sni-proxy.operatorRoutesConfigMap" . }}
   (mounted as optional: until the operator runs it counts as empty). {{ end }}A shoot installed with the
   vpn-seed-server chart alone needs its entry in `routes.connect` (its NOTES print it); now:
{{- if .Values.routes.connect }}
{{- range $k, $v := .Values.routes.connect }}
     {{ $k }} -> {{ $v }}
{{- end }}
{{- else }} none.
{{- end }}

Check: kubectl -n {{ .Release.Namespace }} rollout status deployment {{ $svc }}
{{- end }}
