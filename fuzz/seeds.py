#!/usr/bin/env python3
"""Writes the seed corpus of the `request` fuzz target: a few valid request frames
(what follows the size prefix) of different APIs and versions, flexible and not.

Run from the repository root: `python3 fuzz/seeds.py`. The seeds are named `seed-*`
so that .gitignore keeps them and drops what libFuzzer adds to the same directory.
`crates/broker/tests/malformed.rs` checks that every seed is a request the broker
serves, so a codec change that breaks one is noticed.
"""

import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "request")


def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def boolean(v): return b"\x01" if v else b"\x00"


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def varint(v):  # zigzag, as records encode their fields
    return uvarint((v << 1) ^ (v >> 63))


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def nullable_bytes(b):
    return i32(-1) if b is None else i32(len(b)) + b


def compact_bytes(b):
    return uvarint(0) if b is None else uvarint(len(b) + 1) + b


def array(items):
    return i32(-1) if items is None else i32(len(items)) + b"".join(items)


def compact_array(items):
    return uvarint(0) if items is None else uvarint(len(items) + 1) + b"".join(items)


TAGS = uvarint(0)  # no tagged fields
UUID = bytes(range(1, 17))


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record_batch(values, timestamp=1_700_000_000_000):
    records = b""
    for delta, value in enumerate(values):
        body = i8(0) + varint(0) + varint(delta) + varint(-1) + varint(len(value)) + value + varint(0)
        records += varint(len(body)) + body
    after_crc = (
        i16(0)  # attributes: no compression, create time
        + i32(len(values) - 1)  # last offset delta
        + i64(timestamp) + i64(timestamp)
        + i64(-1) + i16(-1) + i32(-1)  # no producer id, epoch, sequence
        + i32(len(values))
        + records
    )
    after_length = i32(-1) + i8(2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return i64(0) + i32(len(after_length)) + after_length


def header(key, version, flexible):
    h = i16(key) + i16(version) + i32(7) + string("seed")
    return h + TAGS if flexible else h


BATCH = record_batch([b"hello", b"world"])

SEEDS = {
    "api_versions-v0": header(18, 0, False),
    "api_versions-v3": header(18, 3, True) + compact_string("seed") + compact_string("1.0") + TAGS,
    "metadata-v0": header(3, 0, False) + array([string("t")]),
    "metadata-v1-all": header(3, 1, False) + array(None),
    "metadata-v12": header(3, 12, True)
    + compact_array([bytes(16) + compact_string("t") + TAGS])
    + boolean(True) + boolean(True) + TAGS,
    "produce-v3": header(0, 3, False)
    + string(None) + i16(-1) + i32(1000)
    + array([string("t") + array([i32(0) + nullable_bytes(BATCH)])]),
    "produce-v9": header(0, 9, True)
    + compact_string(None) + i16(1) + i32(1000)
    + compact_array([compact_string("t") + compact_array([i32(0) + compact_bytes(BATCH) + TAGS]) + TAGS])
    + TAGS,
    "produce-v13": header(0, 13, True)
    + compact_string(None) + i16(-1) + i32(1000)
    + compact_array([UUID + compact_array([i32(0) + compact_bytes(BATCH) + TAGS]) + TAGS])
    + TAGS,
    "fetch-v4": header(1, 4, False)
    + i32(-1) + i32(100) + i32(1) + i32(1 << 20) + i8(0)
    + array([string("t") + array([i32(0) + i64(0) + i32(1 << 20)])]),
    "fetch-v12": header(1, 12, True)
    + i32(-1) + i32(100) + i32(1) + i32(1 << 20) + i8(0) + i32(0) + i32(-1)
    + compact_array([compact_string("t") + compact_array([
        i32(0) + i32(-1) + i64(0) + i32(-1) + i64(-1) + i32(1 << 20) + TAGS
    ]) + TAGS])
    + compact_array([]) + compact_string("") + TAGS,
    "list_offsets-v1": header(2, 1, False)
    + i32(-1) + array([string("t") + array([i32(0) + i64(-2)])]),
    "create_topics-v7": header(19, 7, True)
    + compact_array([compact_string("t") + i32(3) + i16(1) + compact_array([])
                     + compact_array([compact_string("retention.ms") + compact_string("1000") + TAGS])
                     + TAGS])
    + i32(5000) + boolean(False) + TAGS,
    "delete_topics-v6": header(20, 6, True)
    + compact_array([compact_string("t") + bytes(16) + TAGS, compact_string(None) + UUID + TAGS])
    + i32(5000) + TAGS,
    "create_partitions-v3": header(37, 3, True)
    + compact_array([compact_string("t") + i32(4) + compact_array(None) + TAGS])
    + i32(5000) + boolean(True) + TAGS,
    "delete_records-v2": header(21, 2, True)
    + compact_array([compact_string("t") + compact_array([i32(0) + i64(1) + TAGS]) + TAGS])
    + i32(5000) + TAGS,
    "describe_configs-v4": header(32, 4, True)
    + compact_array([
        i8(2) + compact_string("t") + compact_array(None) + TAGS,
        i8(4) + compact_string("1") + compact_array([compact_string("num.partitions")]) + TAGS,
    ])
    + boolean(True) + boolean(True) + TAGS,
    "alter_configs-v0": header(33, 0, False)
    + array([i8(2) + string("t") + array([string("retention.ms") + string("5000")])])
    + boolean(True),
    "incremental_alter_configs-v1": header(44, 1, True)
    + compact_array([i8(2) + compact_string("t") + compact_array([
        compact_string("cleanup.policy") + i8(2) + compact_string("compact") + TAGS,
        compact_string("retention.ms") + i8(1) + compact_string(None) + TAGS,
    ]) + TAGS])
    + boolean(True) + TAGS,
    "describe_cluster-v1": header(60, 1, True) + boolean(True) + i8(1) + TAGS,
    "describe_log_dirs-v4": header(35, 4, True)
    + compact_array([compact_string("t") + compact_array([i32(0), i32(1)]) + TAGS]) + TAGS,
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, frame in SEEDS.items():
        with open(os.path.join(OUT, "seed-" + name), "wb") as f:
            f.write(frame)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")


if __name__ == "__main__":
    main()
