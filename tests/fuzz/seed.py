#!/usr/bin/env python3
"""Writes the seed corpora of the `stream` and `dispatch` fuzz targets from the protocol
conformance cases file (JSON lines; each case has a `send` object, a `raw` string or a list of
`chunks`, with `\\xHH`, `\\n`, `\\r`, `\\t` escapes, `${rep:N:TEXT}` repetitions and `${name}`
handles saved by earlier cases).

Usage: tests/fuzz/seed.py CASES_FILE

Seeds go to corpus/stream/ and corpus/dispatch/ beside this script, named after the case.
The helper_frames seeds come from `cargo run --example helper_seeds` (see README.md).
"""

import json
import os
import re
import sys

# Larger inputs (the token-count limit case) would only slow the fuzzer down.
MAX_SEED = 8192
ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|n|r|t|\\)")
REP = re.compile(r"\$\{rep:(\d+):([^}]*)\}")
HANDLE = re.compile(r"\$\{[a-z]+\}")


def unescape(text):
    def one(m):
        e = m.group(1)
        if e.startswith(b"x"):
            return bytes([int(e[1:], 16)])
        return {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"\\": b"\\"}[e]

    text = REP.sub(lambda m: m.group(2) * int(m.group(1)) if int(m.group(1)) * len(m.group(2)) <= MAX_SEED else "\0" * (MAX_SEED + 1), text)
    text = HANDLE.sub("1000", text)
    return ESCAPE.sub(one, text.encode("latin-1" if all(ord(c) < 256 for c in text) else "utf-8"))


def chunks_of(case):
    if "send" in case:
        return [json.dumps(case["send"]).encode() + b"\n"]
    if "raw" in case:
        return [unescape(case["raw"])]
    if "chunks" in case:
        return [unescape(c) for c in case["chunks"]]
    return None


def stream_seed(chunks):
    """The stream target's layout: a count of chunk sizes, the sizes (size - 1), the data."""
    sizes = [len(c) - 1 for c in chunks[:-1] if 0 < len(c) <= 256][:15]
    if len(sizes) != len(chunks) - 1:
        sizes = []
    return bytes([len(sizes)]) + bytes(sizes) + b"".join(chunks)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    out = {t: os.path.join(here, "corpus", t) for t in ("stream", "dispatch")}
    for d in out.values():
        os.makedirs(d, exist_ok=True)
    written = skipped = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            case = json.loads(line)
            chunks = chunks_of(case)
            if chunks is None or sum(map(len, chunks)) > MAX_SEED:
                skipped += 1
                continue
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", case["id"])
            with open(os.path.join(out["dispatch"], name), "wb") as s:
                s.write(b"".join(chunks))
            with open(os.path.join(out["stream"], name), "wb") as s:
                s.write(stream_seed(chunks))
            written += 1
    print(f"{written} seeds per target written, {skipped} cases skipped (over {MAX_SEED} bytes)")


if __name__ == "__main__":
    main()
