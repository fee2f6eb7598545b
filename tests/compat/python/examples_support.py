"""Shared by the reference examples' end-to-end tests (test_example_*.py):
events from `strom generate --stdout` (the same seeded events the example's
one command produces), produced in order with their keys and event-time
timestamps, and the example directories.
"""

from __future__ import annotations

import json
import subprocess

from compat import cf_produce_all, cf_producer
from conftest import REPO, strom_bin

EXAMPLES = REPO / "examples"


def generated(dataset: str, **flags) -> list[dict]:
    """`strom generate DATASET --stdout` with `--flag value` for each keyword
    (underscores become dashes): dicts with topic, key, value, timestamp."""
    args = [str(strom_bin()), "generate", dataset, "--stdout"]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def produce_events(bootstrap: str, events: list[dict], topic: str | None = None) -> None:
    """Produces generated events, each to its own topic (or `topic`), in order,
    with its key and its event time as the record timestamp."""
    producer = cf_producer(bootstrap, enable_idempotence=True)
    by_topic: dict[str, list[dict]] = {}
    for e in events:
        by_topic.setdefault(topic or e["topic"], []).append(
            {
                "key": e["key"].encode() if e.get("key") is not None else None,
                "value": json.dumps(e["value"]).encode(),
                "timestamp": e["timestamp"],
            }
        )
    for t, records in by_topic.items():
        reports = cf_produce_all(producer, records, t)
        failed = [err for err, _ in reports if err is not None]
        assert not failed, f"{len(failed)} of {len(records)} records to {t} failed: {failed[:3]}"
