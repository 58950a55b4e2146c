# syntax=docker/dockerfile:1
# The `sluice` image: a multi-stage build into distroless/cc, non-root.
#   docker build -t sluice:dev .
#
# Why distroless/cc (glibc, dynamically linked) and not a static binary:
# - a static musl build needs the x86_64-unknown-linux-musl target, which this project's build
#   machines do not have;
# - a static glibc binary breaks name resolution: getaddrinfo loads NSS modules at run time,
#   which a static binary cannot, and reqwest and kube resolve names through it (the Prometheus
#   URL, the API server). distroless/cc carries exactly the glibc and libgcc the binary links
#   against, with CA certificates and a nonroot user, and no shell or package manager.
# Size: about 21 MB for the image (see deploy/README.md), under the 40 MB the issue allows.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Every path the manifest and the crate name: Cargo.toml declares the webhook bench, and the
# sandbox compiles deploy/ (webhook configurations, CRDs) into the binary.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY deploy ./deploy
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sluice \
    && strip target/release/sluice \
    && cp target/release/sluice /sluice

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sluice /usr/local/bin/sluice
# distroless's `nonroot` user; deploy/base/deployment.yaml runs as the same uid with
# runAsNonRoot, so Kubernetes can check it without resolving a name.
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
