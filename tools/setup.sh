#!/usr/bin/env bash
# Installs everything reversed-vpn needs on a fresh Debian machine (as root) and builds the workspace:
# Debian tools for the data path and the demo/benchmark, the container engine and the test bed's node
# tools, pnpm, the node modules, the native TUN addon and every TypeScript project; then the Kubernetes
# binaries of the test bed (from their Go modules, cached in /var/cache/reversed-vpn) and the container
# images (`pnpm images`). Safe to run again: what is cached is skipped. SETUP_SKIP_TESTBED=1 stops after
# the workspace build (no Go build, no images).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (it installs Debian packages; the demo creates network namespaces)" >&2
  exit 2
fi

need_apt=0
for t in ip nft iptables iperf3 openvpn ping curl openssl jq tcpdump podman runc containerd ctr debootstrap conntrack nsenter findmnt; do command -v "$t" >/dev/null || need_apt=1; done
[ -x /usr/lib/cni/bridge ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  echo "setup: installing Debian packages (data path tools, podman + runc, containerd, CNI plugins, debootstrap)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    iproute2 nftables iptables iperf3 openvpn iputils-ping curl openssl jq ca-certificates procps \
    podman runc containerd containernetworking-plugins conntrack socat tcpdump ethtool ebtables debootstrap util-linux >/dev/null
fi

if ! command -v pnpm >/dev/null; then
  echo "setup: installing pnpm 10"
  npm i -g pnpm@10 >/dev/null
fi

echo "setup: installing node modules"
pnpm install --frozen-lockfile --reporter=append-only | tail -n 3
echo "setup: building (native TUN addon + TypeScript)"
NX_DAEMON=false pnpm exec nx run-many -t build --outputStyle=static
if [ "${SETUP_SKIP_TESTBED:-0}" != 1 ]; then
  echo "setup: test bed binaries (Kubernetes, etcd, CoreDNS from their Go modules; about 10 minutes when not cached)"
  bash tools/testbed/build-binaries.sh
  echo "setup: container images (pnpm images; the first build makes the Debian and Node 24 bases)"
  node tools/dist/images.js --quiet
fi
echo "setup: done"
