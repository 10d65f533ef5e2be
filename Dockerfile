# SyncKairos server image: `synckairos serve` (default) and `synckairos migrate`
# (the operator's migration Job runs the same image with args ["migrate"]).
# Build from the repository root:  make image   (or: docker build -t synckairos:0.1.0 .)
# Multi-stage: a Rust toolchain builds the stripped `dist` profile binary; the runtime is
# distroless (glibc + CA certificates, no shell, no package manager) and runs as uid 65532.
# VERSION / REVISION / SOURCE (build args, set by `make image`) become the OCI labels;
# REVISION is also stamped into `synckairos --version` and /v1/time's build_version
# (without it build.rs asks git, when the context has .git, else says "unknown").

# sqlx 0.9 (server) needs Rust >= 1.94; the toolchain this repository is tested with is 1.95.
FROM rust:1.95-bookworm AS build
ARG REVISION=unknown
WORKDIR /src
# The whole workspace: cargo needs every member's manifest, the server embeds
# migrations/ and server/assets/ at compile time.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    SYNCKAIROS_REVISION=$REVISION cargo build --profile dist --locked -p synckairos --bin synckairos \
 && install -D -m 0755 target/dist/synckairos /out/synckairos

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="synckairos" \
      org.opencontainers.image.description="Real-time timer synchronization service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.source="$SOURCE"
COPY --from=build /out/synckairos /usr/local/bin/synckairos
USER 65532:65532
ENV BIND=0.0.0.0 PORT=8080 LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/synckairos"]
CMD ["serve"]
