#!/bin/sh
# build-kernel.sh SRC NAME GENCODE...: one fatbin plus ptxas's per-kernel resource report.
set -eu
src=$1; name=$2; shift 2
if ! "$NVCC" -fatbin -std=c++17 -lineinfo -Xptxas=-v "$@" -o "$name.fatbin" "$src" 2> "$name.ptxas.log"; then
  cat "$name.ptxas.log" >&2
  exit 1
fi
# Keep the lines that matter: which kernel, for which arch, registers / shared / spills.
grep -E "Compiling entry function|Used [0-9]+ registers|spill stores" "$name.ptxas.log" \
  | sed -e "s/^ptxas info *: //" > "$name.resources.txt"
echo "== $name.fatbin" && cat "$name.resources.txt"
