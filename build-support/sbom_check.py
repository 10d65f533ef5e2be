#!/usr/bin/env python3
"""Checks CycloneDX SBOMs written by `make sbom` against Cargo.lock.

What a platform team relies on: every third-party component is a crates.io package at a
version Cargo.lock pins, with the lockfile's SHA-256 (the hash cargo verifies on download),
a purl and a license; and nothing is listed twice. Exit status 1 names the first problems.
Usage: sbom_check.py Cargo.lock SBOM.json...
"""
import json
import sys
import tomllib


def main(lock_path, sboms):
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    pinned = {(p["name"], p["version"]): p for p in lock["package"]}
    problems = []
    for path in sboms:
        with open(path) as f:
            bom = json.load(f)
        if bom.get("bomFormat") != "CycloneDX":
            problems.append(f"{path}: not a CycloneDX document")
            continue
        comps = bom.get("components", [])
        seen = set()
        for c in comps:
            key = (c.get("name"), c.get("version"))
            where = f"{path}: {key[0]}@{key[1]}"
            if key in seen:
                problems.append(f"{where}: listed twice")
            seen.add(key)
            p = pinned.get(key)
            if p is None:
                problems.append(f"{where}: not in Cargo.lock")
                continue
            if p.get("source") is None:  # a workspace member: our own code
                continue
            if p["source"] != "registry+https://github.com/rust-lang/crates.io-index":
                problems.append(f"{where}: source {p['source']} is not crates.io")
            hashes = {h.get("content") for h in c.get("hashes", []) if h.get("alg") == "SHA-256"}
            if p.get("checksum") not in hashes:
                problems.append(f"{where}: SHA-256 differs from Cargo.lock")
            if not c.get("purl", "").startswith(f"pkg:cargo/{key[0]}@{key[1]}"):
                problems.append(f"{where}: purl {c.get('purl')}")
            if not c.get("licenses"):
                problems.append(f"{where}: no license")
        top = bom.get("metadata", {}).get("component", {})
        print(f"{path}: {top.get('name')}@{top.get('version')}, {len(comps)} components")
    for p in problems[:20]:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
