# syntax=docker/dockerfile:1
#
# auth-server container image (and the demo MCP servers of the local stack).
#
#   docker build -t mcp-auth-server .                               # auth-server (last stage)
#   docker build --target demo-mcp-servers -t mcp-demo-servers .    # demo MCP servers
#
# Build stages compile with the official Rust image; the images that run are distroless
# (glibc and libgcc, CA certificates, no shell, no package manager) and run as uid 65532.
# No HEALTHCHECK: a distroless image has no shell or HTTP client to run one with. Kubernetes
# probes /healthz and /readyz from outside (deploy/kubernetes/deployment.yaml); so can any
# orchestrator that probes over HTTP.

# ---- sources: the whole workspace (filtered by .dockerignore), shared by both builds ----
FROM rust:1-bookworm AS source
WORKDIR /build
COPY . .

# ---- auth-server, release build. Cache mounts keep crates and build output between builds;
# the binary is copied out of the cache, which is not part of the layer. ----
FROM source AS build
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release -p auth-server --locked --bin auth-server \
    && install -D -m 0755 target/release/auth-server /out/auth-server

# ---- the demo MCP servers (integration-tests crate), for docker-compose.yml only ----
FROM source AS build-demo
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release -p integration-tests --locked --bin demo-mcp-servers \
    && install -D -m 0755 target/release/demo-mcp-servers /out/demo-mcp-servers

FROM gcr.io/distroless/cc-debian12:nonroot AS demo-mcp-servers
COPY --from=build-demo /out/demo-mcp-servers /usr/local/bin/demo-mcp-servers
USER 65532:65532
EXPOSE 8481 8482
ENTRYPOINT ["/usr/local/bin/demo-mcp-servers"]
CMD ["--currenttime", "0.0.0.0:8481", "--fininfo", "0.0.0.0:8482"]

# ---- auth-server runtime: the default target (last stage) ----
FROM gcr.io/distroless/cc-debian12:nonroot AS auth-server
COPY --from=build /out/auth-server /usr/local/bin/auth-server
# The shipped policy. Kubernetes mounts its ConfigMap over /etc/auth-server (a directory
# mount, so edits reach the running process); docker-compose.yml mounts ./scopes.yml.
COPY scopes.yml /etc/auth-server/scopes.yml
# Listen on all interfaces in the container only: the binary's own default stays loopback.
ENV AUTH_LISTEN=0.0.0.0:8888 \
    AUTH_SCOPES_FILE=/etc/auth-server/scopes.yml \
    AUTH_LOG_FORMAT=json
# A numeric user, so that Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 65532:65532
EXPOSE 8888
ENTRYPOINT ["/usr/local/bin/auth-server"]
