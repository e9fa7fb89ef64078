#!/usr/bin/env bash
# Installs everything reversed-vpn needs on a fresh Debian machine (as root) and builds the workspace:
# Debian tools for the data path and the demo/benchmark, pnpm, the node modules, the native TUN addon
# and every TypeScript project. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (it installs Debian packages; the demo creates network namespaces)" >&2
  exit 2
fi

need_apt=0
for t in ip nft iptables iperf3 openvpn ping curl openssl jq; do command -v "$t" >/dev/null || need_apt=1; done
if [ "$need_apt" = 1 ]; then
  echo "setup: installing Debian packages (iproute2 nftables iptables iperf3 openvpn iputils-ping curl openssl jq)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    iproute2 nftables iptables iperf3 openvpn iputils-ping curl openssl jq ca-certificates procps >/dev/null
fi

if ! command -v pnpm >/dev/null; then
  echo "setup: installing pnpm 10"
  npm i -g pnpm@10 >/dev/null
fi

echo "setup: installing node modules"
pnpm install --frozen-lockfile --reporter=append-only | tail -n 3
echo "setup: building (native TUN addon + TypeScript)"
NX_DAEMON=false pnpm exec nx run-many -t build --outputStyle=static
echo "setup: done"
