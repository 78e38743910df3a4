#!/usr/bin/env bash
# The checks of template.yaml (issue 4, section 3), offline and without AWS credentials:
#
#   scripts/sam-checks.sh lint      sam validate --lint, then cfn-lint: zero errors and warnings
#   scripts/sam-checks.sh checkov   checkov -f template.yaml --skip-download: zero failed checks
#                                   (each skip is justified inline, tests/template_security.py checks that)
#   scripts/sam-checks.sh build     sam build through cargo-lambda (no Docker), then checks that
#                                   .aws-sam/build/Indexer/bootstrap is an ELF of the template's
#                                   architecture (arm64)
#   scripts/sam-checks.sh all       the three, in that order (the default)
#
# Tools come from git-ignored venvs made by scripts/tool-venv.sh (sam, checkov, lambda).
#
# arm64 needs Rust's aarch64-unknown-linux-gnu standard library (zig, from the ziglang wheel,
# links). If it is not installed and `rustup target add` cannot fetch it (a machine without
# access to the Rust distribution server), the build check falls back to x86_64 with
# `--parameter-overrides Architecture=x86_64` and says so loudly; the template's default stays
# arm64 (SAM_CHECK_ARCH=x86_64 forces the fallback, SAM_CHECK_ARCH=arm64 forbids it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export SAM_CLI_TELEMETRY=0
log() { printf 'sam-checks: %s\n' "$*" >&2; }

lint() {
  local bin
  bin=$(bash scripts/tool-venv.sh sam)
  log "sam validate --lint ($("$bin/sam" --version))"
  "$bin/sam" validate --lint --template template.yaml
  log "cfn-lint ($("$bin/cfn-lint" --version))"
  "$bin/cfn-lint" template.yaml
  echo "cfn-lint: template.yaml: no errors, no warnings"
}

checkov() {
  local bin
  bin=$(bash scripts/tool-venv.sh checkov)
  log "checkov $("$bin/checkov" --version) -f template.yaml --skip-download"
  # Exits non-zero on any failed check; skipped checks carry their reasons in the template.
  "$bin/checkov" -f template.yaml --skip-download --compact --quiet --framework cloudformation
  echo "checkov: skips in template.yaml: $(grep -c 'checkov:skip=' template.yaml) (reasons inline)"
}

elf_machine() {  # prints aarch64, x86_64 or something else for an ELF file
  python3 - "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(20)
assert head[:4] == b"\x7fELF", "not an ELF file"
machine = struct.unpack("<H", head[18:20])[0]
print({0xB7: "aarch64", 0x3E: "x86_64"}.get(machine, hex(machine)))
EOF
}

build() {
  local sam lambda arch=${SAM_CHECK_ARCH:-} artifact machine
  sam=$(bash scripts/tool-venv.sh sam)
  lambda=$(bash scripts/tool-venv.sh lambda)
  export PATH="$lambda:$PATH"
  if [[ -z $arch ]]; then
    arch=arm64
    if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
      log "adding the aarch64-unknown-linux-gnu target"
      if ! rustup target add aarch64-unknown-linux-gnu >&2; then
        arch=x86_64
      fi
    fi
  fi
  if [[ $arch == x86_64 ]]; then
    log "WARNING: building for x86_64, not arm64: Rust's aarch64-unknown-linux-gnu target is not"
    log "WARNING: installed and cannot be fetched here. template.yaml still defaults to arm64."
  fi
  log "sam build (cargo-lambda $(cargo-lambda lambda --version | awk '{print $2}'), Architecture=$arch)"
  local start=$SECONDS
  "$sam/sam" build --template template.yaml --build-dir .aws-sam/build \
    --parameter-overrides "Architecture=$arch"
  log "sam build took $((SECONDS - start)) s"
  artifact=.aws-sam/build/Indexer/bootstrap
  [[ -x $artifact ]] || { log "no executable $artifact"; exit 1; }
  if command -v file >/dev/null 2>&1; then file "$artifact"; fi
  machine=$(elf_machine "$artifact")
  case $arch/$machine in
    arm64/aarch64 | x86_64/x86_64) ;;
    *) log "$artifact is $machine, expected $arch"; exit 1 ;;
  esac
  echo "sam build: $artifact is an ELF $machine executable ($(du -h "$artifact" | cut -f1)), Architecture=$arch"
}

case ${1:-all} in
  lint) lint ;;
  checkov) checkov ;;
  build) build ;;
  all) lint; checkov; build ;;
  *) echo "usage: $0 [lint|checkov|build|all]" >&2; exit 2 ;;
esac
