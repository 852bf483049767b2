#!/usr/bin/env python3
"""Writes assets/pack-dictionary.jsonl: one packed report per kind of outcome, taken from a snapshot.

The store compresses each vehicle's evidence against this file (zstd raw-content dictionary), so
it should hold what real reports repeat: keys, endpoints, Smartcar's error texts, remedies.

    VTRIAGE_HOME=/tmp/vh cargo run --release -- check >/dev/null
    python3 scripts/pack_dictionary.py /tmp/vh/cache/snapshot-demo.json > assets/pack-dictionary.jsonl

Needs the `zstd` command. Frames of the snapshot are read with the current dictionary.
"""

import base64
import json
import os
import subprocess
import sys

DICTIONARY = os.path.join(os.path.dirname(__file__), "..", "assets", "pack-dictionary.jsonl")
BUDGET = 64 * 1024


def unpack(frame: bytes) -> bytes:
    if frame.startswith(b"{"):
        return frame
    args = ["zstd", "-d", "-q", "-c"]
    if os.path.getsize(DICTIONARY) > 0:
        args += ["-D", DICTIONARY]
    return subprocess.run(args, input=frame, capture_output=True, check=True).stdout


def signature(record: dict, contents: dict) -> tuple:
    findings = tuple(f["id"] for f in contents["diagnosis"].get("findings", []))
    answered = tuple(
        sorted(
            json.dumps(o["probe"], sort_keys=True) + ("ok" if "Ok" in o["outcome"] else "err")
            for o in contents.get("observations", [])
        )
    )
    make = (record.get("attributes") or {}).get("make")
    return (findings, answered, make == "TESLA")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: pack_dictionary.py SNAPSHOT")
    with open(sys.argv[1], "rb") as f:
        lines = f.read().splitlines()[1:]
    first = {}
    count = {}
    for line in lines:
        record = json.loads(line)
        packed = record.get("packed")
        if not packed:
            continue
        frame = base64.b64decode(packed + "=" * (-len(packed) % 4))
        contents = unpack(frame)
        key = signature(record, json.loads(contents))
        first.setdefault(key, contents)
        count[key] = count.get(key, 0) + 1
    chosen = []
    size = 0
    for key in sorted(first, key=lambda k: -count[k]):
        if size + len(first[key]) + 1 > BUDGET:
            continue
        chosen.append(first[key])
        size += len(first[key]) + 1
    # zstd finds matches faster near the end of a raw dictionary: the most common outcome last.
    sys.stdout.buffer.write(b"\n".join(reversed(chosen)) + b"\n")

if __name__ == "__main__":
    main()
