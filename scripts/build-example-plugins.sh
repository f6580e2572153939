#!/usr/bin/env bash
# Builds the example filter plugins that are written outside Swift, into DIR (default
# .build/example-plugins):
#   libswarm-maintenance.so   C     (Plugins/examples/c-filter)
#   libswarm-spare-nodes.so   Rust  (Plugins/examples/rust-filter), built with rustc alone
#   roomy.plugin.json, gpu-room.plugin.json and libswarm-declarative-examples.so:
#                             declarative plugins (Plugins/examples/declarative), plain C
#                             functions the host calls through libffi
# Copy them into a node's --plugin-dir to use them. Rust is skipped, with a note, when
# rustc is not installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/.build/example-plugins}
mkdir -p "$out"
cc -shared -fPIC -O2 -Wall -Werror -I "$root/Sources/SwarmPluginABI/include" \
   -o "$out/libswarm-maintenance.so" "$root/Plugins/examples/c-filter/maintenance_filter.c"
echo "built $out/libswarm-maintenance.so"
cc -shared -fPIC -O2 -Wall -Werror -o "$out/libswarm-declarative-examples.so" "$root/Plugins/examples/declarative/roomy.c"
cp "$root/Plugins/examples/declarative/"*.plugin.json "$out/"
echo "built $out/libswarm-declarative-examples.so with roomy.plugin.json and gpu-room.plugin.json"
export PATH="$HOME/.cargo/bin:$PATH"
if command -v rustc >/dev/null 2>&1; then
  rustc --edition 2021 --crate-type cdylib -O -o "$out/libswarm-spare-nodes.so" "$root/Plugins/examples/rust-filter/lib.rs"
  echo "built $out/libswarm-spare-nodes.so"
else
  echo "rustc not found: skipped the Rust example" >&2
fi
