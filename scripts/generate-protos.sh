#!/usr/bin/env bash
# Regenerates the Swift code for Sources/SwarmAPI/proto/*.proto.
#
# protoc comes from Debian (protobuf-compiler). The two generators, protoc-gen-swift and
# protoc-gen-grpc-swift-2, are built from the mirrored swift-protobuf and
# grpc-swift-protobuf packages into .build-codegen/ (ignored by git). The generated code
# is committed, so neither CI nor a normal build ever runs this script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null
fi

tools="$root/.build-codegen"
if [ ! -x "$tools/bin/protoc-gen-grpc-swift-2" ] || [ ! -x "$tools/bin/protoc-gen-swift" ]; then
  src="$tools/grpc-swift-protobuf"
  if [ ! -d "$src" ]; then
    git clone -q --branch 2.4.1 https://github.com/grpc/grpc-swift-protobuf "$src"
  fi
  (cd "$src" && swift build -c release --product protoc-gen-grpc-swift-2 \
     && swift build -c release --product protoc-gen-swift)
  mkdir -p "$tools/bin"
  bin=$(cd "$src" && swift build -c release --show-bin-path)
  cp "$bin/protoc-gen-grpc-swift-2" "$bin/protoc-gen-swift" "$tools/bin/"
fi

proto_dir="$root/Sources/SwarmAPI/proto"
# Messages go to SwarmAPI (SwiftProtobuf only, light enough for plugins to link);
# services go to SwarmRPC (gRPC).
out="$root/Sources/SwarmAPI/Generated"
rpc="$root/Sources/SwarmRPC/Generated"
rm -rf "$out" "$rpc"
mkdir -p "$out" "$rpc"
protoc -I "$proto_dir" \
  --plugin=protoc-gen-swift="$tools/bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$tools/bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out" --swift_opt=Visibility=Public \
  --grpc-swift-2_out="$rpc" --grpc-swift-2_opt=Visibility=Public \
  "$proto_dir"/*.proto
echo "generated: $(ls "$out" | tr '\n' ' ')"
# protoc-gen-grpc-swift-2 writes a header-only file for protos without services.
for f in "$rpc"/*.grpc.swift; do
  if grep -q "^public \|^extension \|^internal " "$f"; then
    # The service code lives in SwarmRPC; its messages come from SwarmAPI.
    sed -i 's/^import GRPCProtobuf$/import GRPCProtobuf\nimport SwarmAPI/' "$f"
  else
    rm "$f"
  fi
done
echo "kept: $(ls "$out" "$rpc" | tr '\n' ' ')"
