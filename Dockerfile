# skiff container image: multi-stage build, runtime on Node LTS slim, runs as uid/gid 1337
# (the uid istio-iptables exempts from capture, as for istio-proxy).

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/skiff
# The istio-init container runs `skiff iptables` from this image: it needs iptables and ip.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables iproute2 >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1337 istio-proxy \
 && useradd --uid 1337 --gid 1337 --no-create-home --shell /usr/sbin/nologin istio-proxy
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY config ./config
RUN chmod 0755 dist/cli/main.js && ln -s /opt/skiff/dist/cli/main.js /usr/local/bin/skiff
USER 1337:1337
EXPOSE 15000 15001 15006 15020 15021 15090
ENTRYPOINT ["skiff"]
CMD ["--help"]
