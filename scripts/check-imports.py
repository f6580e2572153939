#!/usr/bin/env python3
"""Checks that Package.swift declares, for every target, each module its sources import
(a target of this package or a product of a dependency); the toolchain's own modules need
no declaration. Prints each missing declaration and exits 1 if there is any.

    python3 scripts/check-imports.py        (needs `swift` on PATH)
"""
import json
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
toolchain = {"Foundation", "FoundationEssentials", "FoundationNetworking", "Glibc", "Musl", "Darwin",
             "Dispatch", "Synchronization", "Testing", "XCTest", "_Concurrency", "Observation", "os"}
package = json.loads(subprocess.check_output(["swift", "package", "dump-package"], cwd=root))
missing = []
for target in package["targets"]:
    if target["type"] == "system":
        continue
    declared = set()
    for dep in target.get("dependencies", []):
        for kind in ("byName", "target", "product"):
            if kind in dep:
                declared.add(dep[kind][0])
    path = target.get("path") or os.path.join("Tests" if target["type"] == "test" else "Sources", target["name"])
    imports = {}
    for dirpath, _, files in os.walk(os.path.join(root, path)):
        for f in files:
            if not f.endswith(".swift"):
                continue
            for line in open(os.path.join(dirpath, f), encoding="utf-8"):
                m = re.match(r"^\s*(?:@\w+\s+)*import\s+(?:(?:struct|class|enum|func|protocol)\s+)?(\w+)", line)
                if m:
                    imports.setdefault(m.group(1), os.path.relpath(os.path.join(dirpath, f), root))
    for module, where in sorted(imports.items()):
        if module in toolchain or module in declared or module == target["name"]:
            continue
        missing.append(f"{target['name']}: imports {module} ({where}) without declaring it")
for m in missing:
    print(m)
if missing:
    sys.exit(1)
print(f"every import of the {len(package['targets'])} targets is declared")
