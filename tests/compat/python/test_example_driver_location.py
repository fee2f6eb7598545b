"""examples/driver-location end to end: the example's pipeline.yaml verbatim against
`strom serve` and redis-server, fed by `strom generate driver-locations` and
`ride-requests` (seeded, some invalid), with every result compared to what this
file computes independently from the same generated events:

- the dead-letter topic: each out-of-range position and ride request, and each
  anomalous jump (an implied speed above 250 km/h since the driver's last good
  position), with its reason;
- per valid position: its geohash and region (precision 5), the drivers the
  region's spatial index holds, the ETAs to the requests within 5 km made in the
  minute before (30 km/h slowed down 1.25×, nearest five), the region's available
  drivers over the last 5 minutes, and the match (an available driver, the nearest
  request of its own region reachable within 5 minutes, no request twice) — on
  `driver-availability-updates`, `eta-updates`, `ride-matches` and WebSocket
  `/driver-updates`;
- the surge multiplier per region and 10-minute window advancing by a minute, on
  `surge-pricing`;
- the final members and positions of the Redis GEO sets `drivers:{region}`;
- the example's page in headless Chromium: a marker per driver at its latest
  position in its availability's colour, the surge of each region's newest window,
  the most recent matches.

The ride requests are produced before the pipeline starts: the ETAs read them as
a global table, loaded before any position is processed, so every position sees
all of them (a request is open for a position by the two event times, never by
arrival). Input topics have one partition so that event time reaches the stateful
operations in order (see test_example_engagement.py). A request per region an hour
after the last closes every earlier window. Waits are failure guards only.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest
from browser import Browser
from compat import cf_create_topic
from examples_support import EXAMPLES, generated, produce_events
from sink_servers import PipelineProcess, TopicReader, WsListener, geohash

PIPELINE = EXAMPLES / "driver-location" / "pipeline.yaml"
START_MS = 1_790_000_000_000
SEED = 17
DRIVERS = 20
LOCATIONS = 1200
LOCATION_INTERVAL_MS = 1000
REQUESTS = 240
REQUEST_INTERVAL_MS = 5000

# What pipeline.yaml asks for.
REGION_PRECISION = 5
MAX_SPEED_KMH = 250.0
INDEX_TTL_MS = 5 * 60_000
RADIUS_KM = 5.0
WITHIN_MS = 60_000
SPEED_KMH = 30.0
TRAFFIC = 1.25
TOP = 5
MAX_ETA_S = 300
WINDOW_MS = 10 * 60_000
ADVANCE_MS = 60_000
GRACE_MS = 30_000
SURGE_BASELINE_H, SURGE_STEP_H, SURGE_MAX_H = 500, 10, 300  # 5 requests, 0.1, 3.0
PAGE_MATCHES = 8


def haversine_km(a: tuple, b: tuple) -> float:
    la1, lo1, la2, lo2 = (math.radians(x) for x in (a[0], a[1], b[0], b[1]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def rust_float(x: float) -> str:
    """A float as Rust's `{}` prints it (no `.0` on whole numbers)."""
    return str(int(x)) if x == int(x) else repr(x)


def in_range(v: dict) -> bool:
    return -90 <= v["latitude"] <= 90 and -180 <= v["longitude"] <= 180


def out_of_range(v: dict) -> str:
    return f"coordinates out of range: latitude={rust_float(v['latitude'])}, longitude={rust_float(v['longitude'])}"


class Model:
    """The example's semantics, written from its README, for one input partition."""

    def __init__(self, requests: list[dict]):
        self.requests = [r for r in requests if in_range(r)]
        self.dead: list[tuple[dict, str]] = []
        self.results: list[dict] = []  # the eta-calculator's records, in order
        self.last_good: dict[str, tuple] = {}
        self.index: dict[str, dict] = defaultdict(dict)  # region → driver → t
        self.availability: dict[str, dict] = defaultdict(dict)  # region → driver → (t, available)
        self.matched: set[tuple[str, str]] = set()

    def anomaly(self, driver: str, at: tuple, t: int) -> str | None:
        prev = self.last_good.get(driver)
        if prev is None:
            return None
        (plat, plon, pt) = prev
        if t < pt:
            return f"position at {t} is older than the previous one at {pt}"
        km = haversine_km((plat, plon), at)
        hours = (t - pt) / 3_600_000
        speed = km / hours if hours > 0 else (math.inf if km > 0 else 0.0)
        return f"implied speed {speed:.0f} km/h above {MAX_SPEED_KMH:.0f} km/h" if speed > MAX_SPEED_KMH else None

    def etas(self, at: tuple, t: int) -> list[dict]:
        near = []
        for r in self.requests:
            if not t - WITHIN_MS <= r["timestamp"] <= t:
                continue
            km = haversine_km(at, (r["latitude"], r["longitude"]))
            if km <= RADIUS_KM:
                near.append((km, r["request_id"], r))
        near.sort(key=lambda n: (n[0], n[1]))
        return [
            {"request_id": rid, "latitude": r["latitude"], "longitude": r["longitude"], "distance_km": km,
             "eta_s": math.floor(km / (SPEED_KMH / TRAFFIC) * 3600.0 + 0.5)}
            for km, rid, r in near[:TOP]
        ]

    def location(self, v: dict) -> None:
        if not in_range(v):
            self.dead.append((v, out_of_range(v)))
            return
        driver, t, at = v["driver_id"], v["timestamp"], (v["latitude"], v["longitude"])
        reason = self.anomaly(driver, at, t)
        if reason:
            self.dead.append((v, f"anomaly: {reason}"))
            return
        self.last_good[driver] = (at[0], at[1], t)
        region = geohash(at[0], at[1], REGION_PRECISION)
        out = dict(v, geohash=geohash(at[0], at[1], 6), region=region)
        # The spatial index and the availability: latest report per driver in the
        # region, of the last 5 minutes.
        index = self.index[region]
        index[driver] = t
        out["nearby"] = sum(1 for s in index.values() if s > t - INDEX_TTL_MS)
        out["etas"] = self.etas(at, t)
        avail = self.availability[region]
        avail[driver] = (t, v["available"])
        out["available_drivers"] = sum(1 for s, a in avail.values() if s > t - INDEX_TTL_MS and a)
        if v["available"]:
            for e in out["etas"]:
                own = geohash(e["latitude"], e["longitude"], REGION_PRECISION) == region
                if e["eta_s"] <= MAX_ETA_S and own and (region, e["request_id"]) not in self.matched:
                    self.matched.add((region, e["request_id"]))
                    out["match"] = e
                    break
        self.results.append(out)

    def surge(self) -> dict:
        """(region, window_start) → the surge-pricing record of each window."""
        counts: dict = defaultdict(int)
        for r in self.requests:
            region = geohash(r["latitude"], r["longitude"], REGION_PRECISION)
            newest = r["timestamp"] // ADVANCE_MS * ADVANCE_MS
            for start in range(newest, r["timestamp"] - WINDOW_MS, -ADVANCE_MS):
                counts[(region, start)] += 1
        out = {}
        for (region, start), n in counts.items():
            ratio = n * 10_000 // SURGE_BASELINE_H
            surge = min(max(ratio - ratio % SURGE_STEP_H, 100), SURGE_MAX_H)
            out[(region, start)] = {"region": region, "window_start": start, "window_end": start + WINDOW_MS,
                                    "count_by_region": n, "surge_multiplier": surge / 100}
        return out


def same_result(got: dict, want: dict) -> bool:
    """Equal, with the ETAs' distances as floats (the rest exact)."""
    def plain(v):
        v = dict(v)
        v["etas"] = [dict(e, distance_km=None) for e in v.get("etas", [])]
        if "match" in v:
            v["match"] = dict(v["match"], distance_km=None)
        return v

    distances = lambda v: [e["distance_km"] for e in v.get("etas", [])]  # noqa: E731
    return plain(got) == plain(want) and distances(got) == pytest.approx(distances(want), rel=1e-12)


def by_position(records) -> dict:
    return {(v["driver_id"], v["timestamp"]): v for v in records}


def test_driver_location_example_end_to_end(broker, redis_server, workdir):
    locations = generated(
        "driver-locations", count=LOCATIONS, keys=DRIVERS, seed=SEED, start_ms=START_MS,
        event_interval_ms=LOCATION_INTERVAL_MS, invalid_fraction=0.03,
    )
    requests = generated(
        "ride-requests", count=REQUESTS, keys=500, seed=SEED, start_ms=START_MS,
        event_interval_ms=REQUEST_INTERVAL_MS, invalid_fraction=0.05,
    )
    model = Model([e["value"] for e in requests])
    for e in locations:
        model.location(e["value"])
    want = model.results
    want_surge = model.surge()
    dead_requests = [(e["value"], out_of_range(e["value"])) for e in requests if not in_range(e["value"])]
    # The generated data exercises every path.
    reasons = [r for _, r in model.dead]
    assert any(r.startswith("coordinates out of range") for r in reasons), reasons
    assert any(r.startswith("anomaly: implied speed") for r in reasons), reasons
    assert dead_requests
    assert len({v["region"] for v in want}) >= 10
    assert sum(1 for v in want if "match" in v) >= 10
    assert any(v["etas"] and not v["available"] for v in want)
    assert any(len(v["etas"]) == TOP for v in want)
    assert len({s["surge_multiplier"] for s in want_surge.values()}) >= 5

    # The requests first: the pipeline reads them as a global table, and its
    # windows read them as a stream.
    cf_create_topic(broker.bootstrap, "ride-requests", partitions=1)
    cf_create_topic(broker.bootstrap, "driver-locations", partitions=1)
    produce_events(broker.bootstrap, requests)
    p = PipelineProcess(workdir, PIPELINE, broker.bootstrap, {"STROM_SINK_REDIS_GEO_URL": redis_server.url})
    p.start()
    updates = TopicReader(broker.bootstrap, "driver-availability-updates")
    etas = TopicReader(broker.bootstrap, "eta-updates")
    matches = TopicReader(broker.bootstrap, "ride-matches")
    surge = TopicReader(broker.bootstrap, "surge-pricing")
    dlq = TopicReader(broker.bootstrap, "driver-location-tracking-dlq")
    live = WsListener(p.ws_url("/driver-updates"))
    page = Browser()
    try:
        page.open(p.http + "/")
        page.wait_until(
            "document.getElementById('status').dataset.state === 'open'", "the page's sockets open"
        )
        p.wait(lambda: p.metric("strom_pipeline_websocket_clients") == 3, "three WebSocket clients")
        produce_events(broker.bootstrap, locations)
        # An hour after the last request, one in each region closes every window.
        flush_ms = requests[-1]["timestamp"] + 3_600_000
        first_in_region: dict = {}
        for r in model.requests:
            first_in_region.setdefault(geohash(r["latitude"], r["longitude"], REGION_PRECISION), r)
        flush = [
            {"topic": "ride-requests", "key": f"flush-{region}", "timestamp": flush_ms,
             "value": dict(r, request_id=f"flush-{region}", timestamp=flush_ms)}
            for region, r in sorted(first_in_region.items())
        ]
        produce_events(broker.bootstrap, flush)

        # Every position that passed validation, exactly once, with its results.
        got = p.wait(
            lambda: (v := [v for _, v, _ in updates.read()]) and len(v) >= len(want) and v,
            f"{len(want)} records on driver-availability-updates",
            timeout=180,
        )
        assert len(got) == len(want)
        got_by, want_by = by_position(got), by_position(want)
        assert set(got_by) == set(want_by)
        for k, w in want_by.items():
            assert same_result(got_by[k], w), (got_by[k], w)
        for _, v, _ in updates.read():
            assert v["region"] == geohash(v["latitude"], v["longitude"], REGION_PRECISION)

        want_etas = [v for v in want if v["etas"]]
        got_etas = p.wait(
            lambda: (v := [v for _, v, _ in etas.read()]) and len(v) >= len(want_etas) and v,
            f"{len(want_etas)} records on eta-updates",
        )
        assert len(got_etas) == len(want_etas)
        for v in got_etas:
            assert same_result(v, want_by[(v["driver_id"], v["timestamp"])]), v

        want_matches = [v for v in want if "match" in v]
        got_matches = p.wait(
            lambda: (v := [(k, v) for k, v, _ in matches.read()]) and len(v) >= len(want_matches) and v,
            f"{len(want_matches)} records on ride-matches",
        )
        assert len(got_matches) == len(want_matches)
        assert sorted((v["driver_id"], v["timestamp"], v["match"]["request_id"]) for _, v in got_matches) == sorted(
            (v["driver_id"], v["timestamp"], v["match"]["request_id"]) for v in want_matches
        )
        matched_requests = [v["match"]["request_id"] for _, v in got_matches]
        assert len(matched_requests) == len(set(matched_requests)), "a request matched twice"
        for key, v in got_matches:
            assert key == v["region"] and v["available"] is True and v["match"]["eta_s"] <= MAX_ETA_S, v

        # The dead-letter topic: each bad position and request, with its reason.
        want_dead = sorted((json.dumps(v, sort_keys=True), r) for v, r in model.dead + dead_requests)
        dead = p.wait(
            lambda: (d := dlq.read()) and len(d) >= len(want_dead) and d,
            f"{len(want_dead)} records on the dead-letter topic",
        )
        assert sorted((json.dumps(v, sort_keys=True), h["strom.error"]) for _, v, h in dead) == want_dead

        # Surge: one result per region and closed window.
        got_surge = p.wait(
            lambda: (s := [(k, v) for k, v, _ in surge.read()]) and len(s) >= len(want_surge) and s,
            f"{len(want_surge)} results on surge-pricing",
        )
        assert len(got_surge) == len(want_surge)
        for key, v in got_surge:
            assert key == v["region"]
            assert v == want_surge[(v["region"], v["window_start"])], v

        # Redis: each region's GEO set holds the drivers seen there, at their last
        # position there.
        want_geo: dict = defaultdict(dict)
        for v in want:
            want_geo[v["region"]][v["driver_id"]] = (v["longitude"], v["latitude"])
        r = redis_server.client()

        def geo_final():
            keys = sorted(r.keys("drivers:*"))
            if keys != sorted(f"drivers:{g}" for g in want_geo):
                return None
            for region, members in want_geo.items():
                names = sorted(members)
                if sorted(r.zrange(f"drivers:{region}", 0, -1)) != names:
                    return None
                for name, pos in zip(names, r.geopos(f"drivers:{region}", *names)):
                    # GEO scores are 52-bit geohashes: within a metre.
                    if abs(pos[0] - members[name][0]) > 1e-5 or abs(pos[1] - members[name][1]) > 1e-5:
                        return None
            return True

        p.wait(geo_final, "the GEO sets drivers:{region} at the last positions", logs=[redis_server])
        for region in want_geo:
            assert 0 < r.ttl(f"drivers:{region}") <= 300

        # WebSocket: every update, as on Kafka.
        received = p.wait(
            lambda: (m := live.messages) and len(m) >= len(want) and m, f"{len(want)} messages on /driver-updates"
        )
        assert len(received) == len(want)
        for v in received:
            assert same_result(v, want_by[(v["driver_id"], v["timestamp"])]), v

        # The page: a marker per driver at its latest position, coloured by it.
        latest: dict = {}
        for v in want:
            latest[v["driver_id"]] = v
        want_markers = sorted(
            [d, "true" if v["available"] else "false", v["latitude"], v["longitude"]] for d, v in latest.items()
        )
        page.wait_until(
            """Array.from(document.querySelectorAll('#map .driver'), c =>
                 [c.dataset.driver, c.dataset.available, +c.dataset.lat, +c.dataset.lon]).sort()""",
            f"{len(want_markers)} driver markers at their latest positions",
            check=lambda markers: sorted(markers) == want_markers,
        )
        # Surge by region: each region's newest window. Windows that closed while the
        # pipeline caught up on the requests, before the page connected, may be
        # missing from it; those that closed at the flush reach it.
        last_request_ms = max(q["timestamp"] for q in model.requests)
        newest: dict = {}
        for (region, start), s in sorted(want_surge.items()):
            newest[region] = s
        at_flush = {g: s for g, s in newest.items() if s["window_end"] + GRACE_MS > last_request_ms}
        assert len(at_flush) >= 10
        shown = page.wait_until(
            """Object.fromEntries(Array.from(document.querySelectorAll('#surge tbody tr'), tr =>
                 [tr.dataset.region, [+tr.dataset.windowStart, +tr.dataset.surge,
                  tr.querySelector('[data-field="surge_multiplier"]').innerText]]))""",
            f"the surge of {len(at_flush)} regions' newest windows",
            check=lambda rows: all(
                g in rows and rows[g][:2] == [s["window_start"], s["surge_multiplier"]] for g, s in at_flush.items()
            ),
        )
        for g, (start, multiplier, text) in shown.items():
            assert want_surge[(g, start)]["surge_multiplier"] == multiplier, (g, start)
            assert text == f"{multiplier:.1f}×", text
            if g in at_flush:
                assert start == at_flush[g]["window_start"]
        cells = page.eval(
            "Object.fromEntries(Array.from(document.querySelectorAll('#map .cell'), c => [c.dataset.region, +c.dataset.surge]))"
        )
        assert cells == {g: m for g, (_, m, _) in shown.items()}
        # The most recent matches, newest first.
        recent = sorted(want_matches, key=lambda v: v["timestamp"], reverse=True)[:PAGE_MATCHES]
        want_rows = [[v["driver_id"], v["match"]["request_id"], str(v["match"]["eta_s"])] for v in recent]
        page.wait_until(
            """Array.from(document.querySelectorAll('#matches li'), li =>
                 [li.dataset.driver, li.dataset.request, li.dataset.etaS])""",
            f"the {PAGE_MATCHES} most recent matches",
            check=lambda rows: rows == want_rows,
        )
    finally:
        page.close()
        live.close()
        for reader in (updates, etas, matches, surge, dlq):
            reader.close()
        p.close()
