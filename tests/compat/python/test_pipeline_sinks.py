"""Pipeline external sinks against their real servers.

`strom pipeline run` (and `strom serve --pipelines`) feeding redis-server, a
PostgreSQL cluster, an OpenSearch-compatible server (osmem-server), a local
HTTP receiver and WebSocket clients of the `websockets` package, all started
here on free 127.0.0.1 ports. The three seed files run verbatim: sink URLs come
from the `STROM_SINK_<TYPE>_URL` environment variables. Kafka is the module's
`strom serve` (conftest's `broker`).

Every wait is a failure guard (60 s) that polls for an exact expected state;
nothing asserts on how long something took.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from compat import cf_create_topic, cf_produce_all, cf_producer, now_ms
from conftest import REPO, running_broker
from sink_servers import (
    HttpRecorder,
    PipelineProcess,
    RedisServer,
    TopicReader,
    WsListener,
    geohash,
    wait_for,
)

SEEDS = REPO / "crates" / "pipeline" / "tests" / "seeds"
WINDOW_MS = 5 * 60 * 1000  # the engagement seed's tumbling window


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sinks")


@pytest.fixture(scope="module")
def redis_server(workdir):
    """Shared by the seed tests (their key patterns differ); the outage test
    stops its own."""
    r = RedisServer(workdir / "shared")
    r.start()
    yield r
    r.stop()


def run_pipeline(pipelines, workdir: Path, file: Path, bootstrap: str, env: dict | None = None) -> PipelineProcess:
    p = PipelineProcess(workdir, file, bootstrap, env)
    pipelines.append(p)
    p.start()
    return p


def stop_cleanly(p: PipelineProcess) -> None:
    code = p.stop()
    assert code == 0, f"{p.name} exited with {code} on SIGTERM\n{p.log_path.read_text()[-8000:]}"


def produce_json(bootstrap: str, topic: str, records) -> None:
    """records: (key, value) pairs; values as JSON."""
    cf_produce_all(
        cf_producer(bootstrap),
        [{"key": k.encode() if k is not None else None, "value": json.dumps(v).encode()} for k, v in records],
        topic,
    )


def committed_offsets(bootstrap: str, group: str, topics: list[str]) -> dict:
    """The offsets `group` committed on partition 0 of each topic (-1001: none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.topic: tp.offset for tp in c.committed([TopicPartition(t, 0) for t in topics], timeout=10)}
    finally:
        c.close()


def last_by_key(records) -> dict:
    out = {}
    for key, value, _ in records:
        out[key] = value
    return out


# --------------------------------------------------------------------------
# 1. driver-location-tracking.yaml: redis-geo, kafka, websocket
# --------------------------------------------------------------------------

DRIVERS = {
    "d-sf-1": (37.7749, -122.4194),
    "d-sf-2": (37.7790, -122.4170),
    "d-ny-1": (40.7128, -74.0060),
}


def test_driver_location_seed_verbatim(broker, redis_server, workdir, pipelines):
    env = {"STROM_SINK_REDIS_GEO_URL": redis_server.url}
    p = run_pipeline(pipelines, workdir, SEEDS / "driver-location-tracking.yaml", broker.bootstrap, env)
    regions = {d: geohash(lat, lon, 4) for d, (lat, lon) in DRIVERS.items()}
    sf, ny = regions["d-sf-1"], regions["d-ny-1"]
    assert regions["d-sf-2"] == sf and sf != ny

    everyone = WsListener(p.ws_url("/driver-updates"))
    sf_only = WsListener(p.ws_url(f"/driver-updates?key={sf}"))
    output = TopicReader(broker.bootstrap, "driver-availability-updates")
    dlq = TopicReader(broker.bootstrap, "driver-location-tracking-dlq")
    try:
        p.wait(
            lambda: p.metric("strom_pipeline_websocket_clients") == 2,
            "both WebSocket clients connected (strom_pipeline_websocket_clients 2)",
        )
        start = now_ms()
        sent: dict[str, tuple[float, float]] = {}

        def send_round(r: int, bad: bool = False):
            batch = []
            for d, (lat, lon) in DRIVERS.items():
                # A few metres north each round, one second apart: no anomaly.
                pos = (lat + r * 1e-5, lon)
                sent[d] = pos
                batch.append((d, {"driver_id": d, "latitude": pos[0], "longitude": pos[1], "timestamp": start + r * 1000}))
            if bad:
                batch.append(("d-bad", {"driver_id": "d-bad", "latitude": 123.0, "longitude": 10.0, "timestamp": start}))
            produce_json(broker.bootstrap, "driver-locations", batch)

        # The WebSocket sink tails its topic from the end, so rounds go on until
        # both clients have heard from the pipeline (the first may predate it).
        rounds = [0]
        send_round(0, bad=True)

        def clients_served():
            if not (any(m.get("driver_id") == "d-ny-1" for m in everyone.messages) and sf_only.messages):
                rounds[0] += 1
                send_round(rounds[0])
                return False
            return True

        p.wait(clients_served, "WebSocket updates on /driver-updates and /driver-updates?key=<region>", logs=[redis_server])
        last_round = rounds[0]

        # Kafka output: every driver of the last round, keyed by region.
        def output_has_last_round():
            got = {v["driver_id"]: (k, v) for k, v, _ in output.read() if v.get("timestamp") == start + last_round * 1000}
            return got if set(got) == set(DRIVERS) else None

        got = p.wait(output_has_last_round, "the last round on driver-availability-updates")
        for d, (key, v) in got.items():
            assert key == regions[d] and v["region"] == regions[d], (d, key, v)
            assert v["geohash"].startswith(regions[d]) and len(v["geohash"]) == 6, v
            assert v["available"] is True and v.get("anomaly") is not True, v
        assert not any(v.get("driver_id") == "d-bad" for _, v, _ in output.read())

        # Redis: GEO members per region at the last position sent.
        r = redis_server.client()

        def geo_current():
            for region, members in ((sf, ["d-sf-1", "d-sf-2"]), (ny, ["d-ny-1"])):
                if sorted(r.zrange(f"drivers:{region}", 0, -1)) != members:
                    return None
                for m, pos in zip(members, r.geopos(f"drivers:{region}", *members)):
                    if pos is None or abs(pos[0] - sent[m][1]) > 1e-4 or abs(pos[1] - sent[m][0]) > 1e-4:
                        return None
            return True

        p.wait(geo_current, f"GEO members of drivers:{sf} and drivers:{ny} at the last positions", logs=[redis_server])
        assert 0 < r.ttl(f"drivers:{sf}") <= 300, "redis-geo keys expire after 5 minutes without updates"
        assert sorted(r.keys("drivers:*")) == sorted([f"drivers:{sf}", f"drivers:{ny}"])

        # WebSocket: the keyed client gets only its region; everyone gets both.
        assert {m["region"] for m in sf_only.messages} == {sf}, sf_only.messages[:5]
        assert {m["driver_id"] for m in everyone.messages} == set(DRIVERS), everyone.messages[:5]

        # The out-of-range position went to the dead-letter topic, nowhere else.
        bad = p.wait(
            lambda: [h for _, v, h in dlq.read() if isinstance(v, dict) and v.get("driver_id") == "d-bad"],
            "the invalid position on driver-location-tracking-dlq",
        )
        assert "strom.error" in bad[0], bad[0]

        # Per-region state (update_driver_availability keeps each region's drivers)
        # counts both San Francisco drivers, whichever input partition their
        # positions came from: group_by_region repartitions by region. By the last
        # round every driver has been seen.
        per_region = {d: v["available_drivers"] for d, (_, v) in got.items()}
        want_per_region = {d: 2 if d.startswith("d-sf") else 1 for d in DRIVERS}
    finally:
        for c in (everyone, sf_only, output, dlq):
            c.close()
    stop_cleanly(p)
    assert per_region == want_per_region, per_region


# --------------------------------------------------------------------------
# 2. user-engagement-analytics.yaml: elasticsearch (osmem), redis, kafka
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opensearch():
    from osmem_server import OsmemServer

    s = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    yield s
    s.close()


def test_engagement_seed_verbatim(broker, redis_server, opensearch, workdir, pipelines):
    env = {"STROM_SINK_ELASTICSEARCH_URL": opensearch.url, "STROM_SINK_REDIS_URL": redis_server.url}
    p = run_pipeline(pipelines, workdir, SEEDS / "user-engagement-analytics.yaml", broker.bootstrap, env)
    output = TopicReader(broker.bootstrap, "processed-analytics")
    dlq = TopicReader(broker.bootstrap, "user-engagement-analytics-dlq")
    try:
        # A window well in the past, closed by a later event (event time).
        w0 = (now_ms() // WINDOW_MS - 3) * WINDOW_MS
        views = [
            ("u1", {"user_id": "u1", "content_id": "c1", "genre": "drama", "watch_duration": 600, "content_duration": 1200, "timestamp": w0 + 1_000}),
            ("u2", {"user_id": "u2", "content_id": "c1", "genre": "drama", "watch_duration": 1200, "content_duration": 1200, "timestamp": w0 + 2_000}),
            ("u1", {"user_id": "u1", "content_id": "c2", "genre": "comedy", "watch_duration": 300, "content_duration": 1200, "timestamp": w0 + 3_000}),
        ]
        produce_json(broker.bootstrap, "user-views", views)
        produce_json(
            broker.bootstrap,
            "user-interactions",
            [("u2", {"user_id": "u2", "content_id": "c1", "watch_duration": 0, "content_duration": 1200, "timestamp": w0 + 4_000})],
        )
        # Every record above is in the application's committed position before the
        # window-closing event is sent: records of two input topics reach the task in
        # fetch order, and one arriving after the window closed would be late.
        p.wait(
            lambda: committed_offsets(broker.bootstrap, "user-engagement-analytics", ["user-views", "user-interactions"])
            == {"user-views": 3, "user-interactions": 1},
            "the first views and the interaction committed by the pipeline",
        )
        # Stream time passes the window's end: it closes.
        produce_json(
            broker.bootstrap,
            "user-views",
            [("u3", {"user_id": "u3", "content_id": "c9", "watch_duration": 60, "content_duration": 600, "timestamp": w0 + WINDOW_MS + 1_000})],
        )
        expected = {
            "c1": {"count_by_content_id": 3, "sum_watch_duration": 1800.0, "calculate_completion_rate": (0.5 + 1.0 + 0.0) / 3},
            "c2": {"count_by_content_id": 1, "sum_watch_duration": 300.0, "calculate_completion_rate": 0.25},
        }

        def check(v: dict, content: str):
            want = expected[content]
            assert v["content_id"] == content and v["window_start"] == w0 and v["window_end"] == w0 + WINDOW_MS, v
            assert v["count_by_content_id"] == want["count_by_content_id"], v
            assert v["sum_watch_duration"] == pytest.approx(want["sum_watch_duration"]), v
            assert v["calculate_completion_rate"] == pytest.approx(want["calculate_completion_rate"]), v

        # Kafka: one result per closed window and content, nothing for the open one.
        got = p.wait(
            lambda: (o := last_by_key(output.read())) and set(o) == set(expected) and o,
            "the closed window's results on processed-analytics",
        )
        for content, v in got.items():
            check(v, content)

        # OpenSearch: one document per content and window, id `<content>@<window start>`.
        def documents():
            opensearch.request("POST", "/user-engagement/_refresh")
            hits = opensearch.request("GET", "/user-engagement/_search?size=100")["hits"]["hits"]
            docs = {h["_id"]: h["_source"] for h in hits}
            return docs if len(docs) >= len(expected) else None

        docs = p.wait(documents, "documents in the user-engagement index")
        assert set(docs) == {f"{c}@{w0}" for c in expected}, sorted(docs)
        for content in expected:
            check(docs[f"{content}@{w0}"], content)

        # Redis `rec:{user_id}`: a window result carries its group fields (content_id)
        # and no user_id, so the redis output cannot name a key: each result is
        # dead-lettered with the missing field named, and no rec:* key appears.
        redis_dead = p.wait(
            lambda: (d := [(v, h) for _, v, h in dlq.read() if h.get("strom.sink") == "redis"]) and len(d) >= len(expected) and d,
            "the redis output's dead letters",
        )
        assert {v["content_id"] for v, _ in redis_dead} == set(expected), redis_dead
        for _, h in redis_dead:
            assert "user_id" in h["strom.error"], h
        assert redis_server.client().keys("rec:*") == []
    finally:
        output.close()
        dlq.close()
    stop_cleanly(p)


# --------------------------------------------------------------------------
# 3. message-delivery-system.yaml: websocket, push_notification, sms_fallback
# --------------------------------------------------------------------------


def test_message_seed_verbatim(broker, workdir, pipelines):
    receiver = HttpRecorder()
    keyring = "k1=" + base64.b64encode(os.urandom(32)).decode()
    env = {
        "STROM_SINK_PUSH_NOTIFICATION_URL": receiver.url("/push"),
        "STROM_SINK_SMS_FALLBACK_URL": receiver.url("/sms"),
        "STROM_PIPELINE_KEYS": keyring,
    }
    # Presence first, so the global table holds it when the pipeline starts.
    cf_create_topic(broker.bootstrap, "user-presence", 1)
    cf_producer_records = [
        {"key": b"alice", "value": b"true"},
        {"key": b"carol", "value": json.dumps({"online": True}).encode()},
        {"key": b"dave", "value": json.dumps({"online": False}).encode()},
    ]
    cf_produce_all(cf_producer(broker.bootstrap), cf_producer_records, "user-presence")

    p = run_pipeline(pipelines, workdir, SEEDS / "message-delivery-system.yaml", broker.bootstrap, env)
    online = WsListener(p.ws_url("/online_users"))
    only_m4 = WsListener(p.ws_url("/online_users?key=m4"))
    dlq = TopicReader(broker.bootstrap, "message-delivery-system-dlq")
    try:
        p.wait(lambda: p.metric("strom_pipeline_websocket_clients") == 2, "both WebSocket clients connected")

        def msg(mid, recipient, content="hi there", **extra):
            v = {"message_id": mid, "chat_id": f"chat-{recipient}", "sender_id": "s1", "recipient_id": recipient, "content": content}
            v.update(extra)
            return (v["chat_id"], v)

        # The WebSocket sink tails its topic from its end: warm up until the
        # online client hears from the pipeline, then send the real messages.
        warm = [0]

        def warmed():
            if any(m["message_id"].startswith("warm") for m in online.messages):
                return True
            warm[0] += 1
            produce_json(broker.bootstrap, "incoming-messages", [msg(f"warm-{warm[0]}", "alice")])
            return False

        p.wait(warmed, "a warm-up message on /online_users")

        plain = {}
        messages = [
            msg("m1", "alice", "hello alice"),  # online → websocket
            msg("m2", "bob", "hello bob"),  # unknown presence → offline → push
            msg("m3", "dave", "hello dave"),  # offline → push
            msg("m4", "carol", "hello carol"),  # online → websocket
            msg("m5", "bob", "third try", delivery_failed=True, attempt=2),  # at the limit → sms
            msg("m6", "alice", "retry online", delivery_failed=True),  # retry → websocket
            msg("m7", "bob", "retry offline", delivery_failed=True),  # retry → push
            ("chat-x", {"message_id": "m8", "chat_id": "chat-x", "recipient_id": "bob", "content": "no sender"}),  # → DLQ
            msg("m9", "bob", "a" * 40),  # spam (a character repeated) → DLQ
            msg("m1", "alice", "ack", type="delivery_confirmation"),  # confirmation: no delivery
        ]
        for _, v in messages:
            plain[v["message_id"]] = v["content"]
        produce_json(broker.bootstrap, "incoming-messages", messages)

        want = {"ws": {"m1", "m4", "m6"}, "push": {"m2", "m3", "m7"}, "sms": {"m5"}}

        def channels():
            return {
                "ws": {m["message_id"] for m in online.messages if not m["message_id"].startswith("warm")},
                "push": {r["body"]["message_id"] for r in receiver.received("/push")},
                "sms": {r["body"]["message_id"] for r in receiver.received("/sms")},
            }

        p.wait(lambda: channels() == want, f"each channel's messages to be {want}")
        dead = p.wait(
            lambda: (d := {v.get("message_id"): h for _, v, h in dlq.read() if isinstance(v, dict)}) and {"m8", "m9"} <= set(d) and d,
            "m8 (no sender) and m9 (spam) on message-delivery-system-dlq",
        )
        assert set(dead) == {"m8", "m9"}, dead
        assert "sender_id" in dead["m8"]["strom.error"], dead["m8"]
        assert "repeated" in dead["m9"]["strom.error"], dead["m9"]

        # What was delivered: sealed content, the routing fields.
        delivered = [m for m in online.messages if not m["message_id"].startswith("warm")]
        delivered += [r["body"] for r in receiver.received()]
        for m in delivered:
            assert m["content"] != plain[m["message_id"]] and m["encryption_key_id"] == "k1", m
            assert m["recipient_server"].startswith("server-") and "_route" not in m, m
        by_id = {m["message_id"]: m for m in delivered}
        assert by_id["m5"]["attempt"] == 3 and by_id["m5"]["retry"] is False, by_id["m5"]
        assert by_id["m6"]["attempt"] == 1 and by_id["m6"]["retry"] is True and by_id["m6"]["online"] is True
        assert by_id["m7"]["attempt"] == 1 and by_id["m7"]["online"] is False
        assert by_id["m1"].get("type") != "delivery_confirmation", "a confirmation was delivered"
        assert [m["message_id"] for m in only_m4.messages] == ["m4"], only_m4.messages
        for r in receiver.received():
            assert r["headers"].get("idempotency-key", "").startswith("message-delivery-system-sink-"), r["headers"]
    finally:
        online.close()
        only_m4.close()
        dlq.close()
    stop_cleanly(p)
    receiver.close()


# --------------------------------------------------------------------------
# 4. PostgreSQL, exactly once through SIGKILLs
# --------------------------------------------------------------------------

PG_PIPELINE = """\
pipeline:
  name: pg-click-counts
  processing_guarantee: exactly_once
  input_sources:
    - type: kafka
      topic: pg-clicks
      partitions: 3
  processors:
    - name: per-user
      operations:
        - count_by_user_id
  output_sinks:
    - type: kafka
      topic: pg-click-totals
    - type: postgres
      table: click_counts
"""


def test_postgres_exactly_once_through_sigkill(broker, postgres, workdir, pipelines):
    postgres.query("CREATE TABLE click_counts (user_id TEXT PRIMARY KEY, count_by_user_id BIGINT NOT NULL)")
    file = workdir / "pg-click-counts.yaml"
    file.write_text(PG_PIPELINE)
    p = run_pipeline(pipelines, workdir, file, broker.bootstrap, {"STROM_SINK_POSTGRES_URL": postgres.url})

    users = [f"u{i}" for i in range(12)]
    chunks = [[users[(c * 7 + i * 5 + i // 3) % len(users)] for i in range(800)] for c in range(4)]
    expected: dict[str, int] = {}
    for chunk in chunks:
        for u in chunk:
            expected[u] = expected.get(u, 0) + 1
    go = [threading.Event() for _ in chunks]
    failure: list[BaseException] = []

    def producer():
        try:
            prod = cf_producer(broker.bootstrap)
            for chunk, event in zip(chunks, go):
                event.wait(120)
                for i in range(0, len(chunk), 20):
                    part = chunk[i : i + 20]
                    cf_produce_all(prod, [{"key": u.encode(), "value": json.dumps({"user_id": u, "n": i}).encode()} for u in part], "pg-clicks")
                    time.sleep(0.02)
        except BaseException as e:  # reported by the main thread
            failure.append(e)

    def total_in_postgres() -> int:
        rows = postgres.query("SELECT COALESCE(SUM(count_by_user_id), 0) FROM click_counts")
        return int(rows[0][0])

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    seen = 0
    for kill in range(3):
        go[kill].set()
        # Kill as soon as PostgreSQL shows progress: mid-load, mid-batch.
        seen = p.wait(lambda: (t := total_in_postgres()) > seen and t, f"progress in PostgreSQL before kill {kill + 1}", logs=[postgres])
        p.kill()
        p.start()
    go[3].set()
    thread.join(120)
    assert not failure, f"producer failed: {failure[0]!r}"
    assert not thread.is_alive(), "producer did not finish"

    def counts():
        return {u: int(n) for u, n in postgres.query("SELECT user_id, count_by_user_id FROM click_counts")}

    try:
        p.wait(lambda: counts() == expected, "PostgreSQL counts equal to what was produced", logs=[postgres])
    except AssertionError as e:
        raise AssertionError(f"{e}\nexpected {expected}\ngot      {counts()}") from None
    # The sink's own offsets moved in the same transactions.
    offsets = postgres.query("SELECT topic, partition, next_offset FROM strom_sink_offsets")
    assert {o[0] for o in offsets} == {"pg-click-counts-sink-postgres"}, offsets

    out = TopicReader(broker.bootstrap, "pg-click-totals")
    try:
        got = p.wait(
            lambda: (o := {k: v["count_by_user_id"] for k, v in last_by_key(out.read()).items()}) == expected and o,
            "the last committed value per key on pg-click-totals equal to the counts",
        )
        # No committed count was computed twice or from lost state: per key (one
        # partition, in order) the committed values only go up.
        history: dict[str, list[int]] = {}
        for k, v, _ in out.read():
            history.setdefault(k, []).append(v["count_by_user_id"])
        for k, values in history.items():
            assert all(a < b for a, b in zip(values, values[1:])), f"{k}: committed counts {values}"
    except AssertionError as e:
        got = {k: v["count_by_user_id"] for k, v in last_by_key(out.read()).items()}
        raise AssertionError(f"{e}\nexpected {expected}\ngot      {got}") from None
    finally:
        out.close()
    assert got == expected
    assert counts() == expected, "PostgreSQL changed after the counts were reached"
    stop_cleanly(p)


# --------------------------------------------------------------------------
# 5. Redis outage: circuit open, nothing lost, circuit closed
# --------------------------------------------------------------------------

OUTAGE_PIPELINE = """\
pipeline:
  name: redis-outage
  input_sources:
    - type: kafka
      topic: outage-events
      partitions: 2
  processors:
    - name: totals
      operations:
        - count_by_item
  output_sinks:
    - type: redis
      key_pattern: "total:{item}"
      url: "redis://127.0.0.1:PORT"
      retries: 2
      retry_backoff: 50ms
      circuit_breaker: 1s
"""


def test_redis_outage_opens_circuit_and_loses_nothing(broker, workdir, pipelines):
    redis = RedisServer(workdir / "outage")
    redis.start()
    try:
        file = workdir / "redis-outage.yaml"
        file.write_text(OUTAGE_PIPELINE.replace("PORT", str(redis.port)))
        p = run_pipeline(pipelines, workdir, file, broker.bootstrap)
        counts: dict[str, int] = {}

        def send(items):
            for i in items:
                counts[i] = counts.get(i, 0) + 1
            produce_json(broker.bootstrap, "outage-events", [(i, {"item": i}) for i in items])

        def redis_matches():
            r = redis.client()
            keys = r.keys("total:*")
            values = r.mget(keys) if keys else []
            got = {k.split(":", 1)[1]: json.loads(v)["count_by_item"] for k, v in zip(keys, values)}
            return got == counts

        labels = {"pipeline": "redis-outage", "sink": "redis", "type": "redis"}
        send(["a", "b", "c", "d", "e"] * 3 + ["a"])
        p.wait(redis_matches, "phase 1 totals in Redis", logs=[redis])
        assert p.metric("strom_pipeline_sink_circuit_state", **labels) == 0

        redis.stop()
        send(["a", "b", "f"] * 2)
        p.wait(
            lambda: p.metric("strom_pipeline_sink_circuit_state", **labels) == 1,
            "strom_pipeline_sink_circuit_state 1 (open) while Redis is down",
        )
        send(["c", "g", "a"])  # while the circuit is open
        assert p.metric("strom_pipeline_sink_circuit_opened_total", **labels) >= 1

        redis.start()  # same port, same append-only file
        p.wait(redis_matches, f"every key at its final total {counts}", logs=[redis])
        p.wait(lambda: p.metric("strom_pipeline_sink_circuit_state", **labels) == 0, "the circuit closed again")
        assert p.metric("strom_pipeline_sink_records_dead_lettered_total", **labels) == 0
        assert p.metric("strom_pipeline_sink_write_errors_total", **labels) >= 2
        stop_cleanly(p)
    finally:
        redis.stop()


# --------------------------------------------------------------------------
# 6. Webhook: 503 retried, 400 dead-lettered
# --------------------------------------------------------------------------

WEBHOOK_PIPELINE = """\
pipeline:
  name: orders-webhook
  input_sources:
    - type: kafka
      topic: webhook-orders
      partitions: 2
  processors:
    - name: real-orders
      operations:
        - filter: "amount >= 0"
  output_sinks:
    - type: http
      url: "URL"
      retries: 20
      retry_backoff: 20ms
"""


def test_webhook_retries_and_dead_letters(broker, workdir, pipelines):
    unavailable = [3]  # the first good requests get 503

    def respond(path, body, headers):
        if body.get("bad"):
            return 400, "rejected: bad order"
        if unavailable[0] > 0:
            unavailable[0] -= 1
            return 503, "busy"
        return 200, "ok"

    receiver = HttpRecorder(respond)
    try:
        file = workdir / "orders-webhook.yaml"
        file.write_text(WEBHOOK_PIPELINE.replace("URL", receiver.url("/hook")))
        p = run_pipeline(pipelines, workdir, file, broker.bootstrap)
        orders = [{"id": i, "amount": i * 10, "bad": i % 7 == 3} for i in range(40)]
        good = {o["id"] for o in orders if not o["bad"]}
        bad = {o["id"] for o in orders if o["bad"]}
        produce_json(broker.bootstrap, "webhook-orders", [(str(o["id"]), o) for o in orders])

        def delivered():
            return {r["body"]["id"] for r in receiver.received(status=200)}

        p.wait(lambda: delivered() == good, "every good order answered 200")
        dlq = TopicReader(broker.bootstrap, "orders-webhook-dlq")
        try:
            dead = p.wait(
                lambda: len(d := dlq.read()) >= len(bad) and d,
                f"{len(bad)} dead letters on orders-webhook-dlq",
            )
        finally:
            dlq.close()
        assert sorted(v["id"] for _, v, _ in dead) == sorted(bad), dead
        for _, _, h in dead:
            assert "400" in h["strom.error"] and "rejected: bad order" in h["strom.error"], h
            assert h["strom.sink"] == "http" and h["strom.original.topic"] == "orders-webhook-sink-http", h

        ok = receiver.received(status=200)
        key_to_id: dict[str, int] = {}
        for r in ok:
            k = r["headers"]["idempotency-key"]
            assert key_to_id.setdefault(k, r["body"]["id"]) == r["body"]["id"], "one Idempotency-Key, two orders"
        assert len(key_to_id) == len(good) and set(key_to_id.values()) == good
        assert len(receiver.received(status=503)) == 3, "the 503 answers were retried"
        labels = {"pipeline": "orders-webhook", "sink": "http", "type": "http"}
        assert p.metric("strom_pipeline_sink_records_dead_lettered_total", **labels) == len(bad)
        assert p.metric("strom_pipeline_sink_retries_total", **labels) >= 1
        stop_cleanly(p)
    finally:
        receiver.close()


# --------------------------------------------------------------------------
# 7. strom serve --pipelines DIR
# --------------------------------------------------------------------------

SERVED_PIPELINE = """\
pipeline:
  name: served-big-orders
  input_sources:
    - type: kafka
      topic: served-orders
      partitions: 2
  processors:
    - name: big
      operations:
        - filter: "amount > 100"
  output_sinks:
    - type: kafka
      topic: served-big-orders
"""


def test_serve_runs_pipelines_dir(request):
    def args(workdir: Path):
        d = workdir / "pipelines"
        d.mkdir()
        (d / "big-orders.yaml").write_text(SERVED_PIPELINE)
        (d / "README.txt").write_text("not a pipeline: ignored")
        return ["--pipelines", str(d)]

    with running_broker(request, args=args) as b:
        # The broker created the pipeline's topics when it started it.
        orders = [{"id": i, "amount": i * 15} for i in range(20)]
        out = TopicReader(b.bootstrap, "served-big-orders")
        try:
            produce_json(b.bootstrap, "served-orders", [(str(o["id"]), o) for o in orders])
            want = sorted(o["id"] for o in orders if o["amount"] > 100)
            got = wait_for(
                lambda: (ids := sorted(v["id"] for _, v, _ in out.read())) == want and ids,
                "the big orders on served-big-orders",
                logs=[b],
            )
        finally:
            out.close()
        assert got == want
