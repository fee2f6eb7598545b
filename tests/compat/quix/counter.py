"""A Quix Streams application (a stream-processing library nobody here wrote):
counts records per key in a state store backed by a compacted changelog topic and
writes `{"key": …, "count": …}` for every input record.

Usage: counter.py BOOTSTRAP INPUT OUTPUT GROUP STATE_DIR EXPECTED_OUTPUTS
Stops after EXPECTED_OUTPUTS outputs (or a guard timeout) and exits 0.
"""

import sys

from quixstreams import Application


def main():
    bootstrap, input_topic, output_topic, group, state_dir, expected = sys.argv[1:7]
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        processing_guarantee="exactly-once",
        commit_interval=0.5,
    )
    source = app.topic(input_topic, key_deserializer="str", value_deserializer="json")
    sink = app.topic(output_topic, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)

    def count(value, key, timestamp, headers, state):
        total = state.get("count", 0) + 1
        state.set("count", total)
        return {"key": key, "count": total}

    sdf = sdf.apply(count, stateful=True, metadata=True)
    sdf.to_topic(sink)
    app.run(count=int(expected), timeout=120)


if __name__ == "__main__":
    main()
