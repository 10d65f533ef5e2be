# SyncKairos server image: `synckairos serve` (default) and `synckairos migrate`
# (the operator's migration Job runs the same image with args ["migrate"]).
# Build from the repository root:  docker build -t synckairos:0.1.0 .
# Multi-stage: a Rust toolchain builds the release binary; the runtime is distroless
# (glibc + CA certificates, no shell, no package manager) and runs as uid 65532.

# sqlx 0.9 (server) needs Rust >= 1.94; the toolchain this repository is tested with is 1.95.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace: cargo needs every member's manifest, the server embeds
# migrations/ and server/assets/ at compile time.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p synckairos --bin synckairos \
 && install -D -m 0755 target/release/synckairos /out/synckairos

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/synckairos /usr/local/bin/synckairos
USER 65532:65532
ENV BIND=0.0.0.0 PORT=8080 LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/synckairos"]
CMD ["serve"]
