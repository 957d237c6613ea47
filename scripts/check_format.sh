#!/usr/bin/env bash
# Fails if any C++/CUDA source differs from .clang-format. Usage: check_format.sh [clang-format]
# With --fix, rewrites the files instead.
set -euo pipefail
cd "$(dirname "$0")/.."
cf=clang-format
fix=0
for a in "$@"; do
  case "$a" in
    --fix) fix=1 ;;
    *) cf="$a" ;;
  esac
done
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
  '*.h' '*.hpp' '*.cpp' '*.cc' '*.cu' '*.cuh' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
[ ${#files[@]} -gt 0 ] || exit 0
if [ $fix = 1 ]; then
  "$cf" -i "${files[@]}"
else
  "$cf" --dry-run --Werror "${files[@]}"
  echo "format ok: ${#files[@]} files"
fi
