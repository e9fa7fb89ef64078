#!/usr/bin/env bash
# Builds the test bed's upstream binaries from their Go modules (none of their code is committed here):
# Kubernetes (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet, kubectl) of one
# release with version ldflags, etcd 3.6 (a tiny main calling etcdmain.Main), CoreDNS, and the static pause
# binary from the Kubernetes module's build/pause source. The result is cached outside the repository in
# $RVPN_TESTBED_CACHE (default /var/cache/reversed-vpn/testbed) and the build is skipped when the cached
# binaries match the versions below. Prints the cold build time to build.json beside the binaries.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
CACHE=${RVPN_TESTBED_CACHE:-/var/cache/reversed-vpn/testbed}
STAMP="k8s=$K8S_VERSION etcd=$ETCD_VERSION coredns=$COREDNS_VERSION"
OUT=$CACHE/bin
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl etcd coredns pause"

have_all() {
  [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ] || return 1
  for b in $BINARIES; do [ -x "$OUT/$b" ] || return 1; done
}
if have_all; then
  echo "testbed: binaries cached in $OUT ($STAMP)"
  exit 0
fi

command -v go >/dev/null || { echo "testbed: Go is needed to build the Kubernetes binaries (go 1.24 or newer)" >&2; exit 2; }
command -v gcc >/dev/null || { echo "testbed: gcc is needed to build the static pause binary" >&2; exit 2; }
start=$(date +%s)
work=$CACHE/work
mkdir -p "$OUT" "$work/k8s" "$work/etcd" "$work/coredns"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
log() { echo "testbed: $* ($(( $(date +%s) - start )) s)"; }
# module downloads are chatty: keep them in a log, show it only when a step fails
golog=$CACHE/work/go.log; : > "$golog"
quiet() { "$@" >>"$golog" 2>&1 || { tail -n 40 "$golog" >&2; echo "testbed: failed: $*" >&2; exit 1; }; }

# --- Kubernetes: k8s.io/kubernetes points its staging modules at local folders, so our own go.mod
# requires it and replaces every staging module with its published v0.Y.Z.
minor=${K8S_VERSION#v1.}; staging=v0.$minor
log "resolving k8s.io/kubernetes@$K8S_VERSION (staging modules at $staging)"
modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
cd "$work/k8s"
{
  echo "module rvpn.local/testbed-k8s"
  echo
  echo "go $(sed -n 's/^go //p' "$modfile")"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$modfile"
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
quiet go get "k8s.io/kubernetes@$K8S_VERSION"
quiet go mod tidy
commit=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Version": "\(.*\)".*/\1/p')
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
major=1; kminor=${minor%%.*}
ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$kminor"
  ld="$ld -X $pkg.gitTreeState=clean -X $pkg.buildDate=$now -X $pkg.gitCommit=module-$commit"
done
log "building Kubernetes $K8S_VERSION (6 binaries; the cold build is the long part)"
go build -trimpath -ldflags "$ld" -o "$OUT/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
log "Kubernetes built"

# --- pause: the static sandbox binary from the module's own source.
src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux
gcc -Os -static -Wall -DVERSION="\"rvpn-testbed-$K8S_VERSION\"" -o "$OUT/pause" "$src/pause.c"
log "pause built"

# --- etcd: a tiny main calling etcdmain.Main, as etcd's own main.go does.
cd "$work/etcd"
cat > go.mod <<GO
module rvpn.local/testbed-etcd

go 1.24
GO
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
quiet go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
quiet go mod tidy
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" .
log "etcd built"

# --- CoreDNS: its root package is the main package.
cd "$work/coredns"
quiet env GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
log "coredns built"

echo "$STAMP" > "$OUT/.stamp"
printf '{"k8s":"%s","etcd":"%s","coredns":"%s","cold_build_seconds":%d,"built_at":"%s"}\n' \
  "$K8S_VERSION" "$ETCD_VERSION" "$COREDNS_VERSION" "$(( $(date +%s) - start ))" "$now" > "$OUT/build.json"
log "done: $OUT"
