{{/* The next steps (also shown by the umbrella chart). */}}
{{- define "crds.notes" -}}
The ShootVpn CRD (shootvpns.vpn.reversed-vpn.dev) is installed; `helm uninstall` keeps it (and every
ShootVpn). Check: kubectl get crd shootvpns.vpn.reversed-vpn.dev
{{- end }}
