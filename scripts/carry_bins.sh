#!/usr/bin/env bash
# Developer helper: copies binaries built here into .carry_<name>/bin with the shared libraries the
# GPU machine lacks (OpenBLAS and its Fortran runtime) in .carry_<name>/lib, for the device tool's
# `carry` (the directory is git-ignored). Usage: scripts/carry_bins.sh NAME BINARY...
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
dst=.carry_$name
mkdir -p "$dst/bin" "$dst/lib"
for b in "$@"; do cp -f "$b" "$dst/bin/"; done
for lib in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
  p=$(ldconfig -p | awk -v l="$lib" '$1 == l && !p {print $NF; p = 1}')
  [ -n "$p" ] && cp -fL "$p" "$dst/lib/$lib"
done
du -sh "$dst"
