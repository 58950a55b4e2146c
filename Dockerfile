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
# Size (see deploy/README.md): the stripped binary is 13.1 MB (5.6 MB gzipped) with the
# profile settings below, 21.5 MB without; the distroless/cc base adds about 24 MB (8.5 MB
# gzipped): about 37 MB unpacked, 14 MB to pull.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything the build reads: Cargo.toml declares the webhook bench (cargo refuses a manifest
# whose bench is missing), and the sandbox compiles deploy/ (webhooks, CRDs) into the binary.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY deploy ./deploy
# The binary is built by deploy/image/build-binary.sh (fat LTO in one codegen unit, optimised
# for size, stripped: 13.1 MB instead of 21.5, which keeps the image under 40 MB unpacked),
# the same script CI runs (tests/run.sh), so these build steps are checked on every CI run.
# The profile is set by the script rather than in Cargo.toml so that `cargo build --release`
# on a laptop stays quick.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bash deploy/image/build-binary.sh /sluice

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sluice /usr/local/bin/sluice
# distroless's `nonroot` user; deploy/base/deployment.yaml runs as the same uid with
# runAsNonRoot, so Kubernetes can check it without resolving a name.
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
