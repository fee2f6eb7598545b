"""examples/engagement end to end: the example's pipeline.yaml verbatim against
`strom serve`, redis-server and an OpenSearch-compatible server (osmem-server),
fed by `strom generate` (seeded), with every result compared to what this file
computes independently from the same generated events:

- 5-minute windows per title: count, watch time, completion rate, joined with
  the title's metadata, exactly once on `processed-analytics`, as documents
  `<title>@<window start>` in the `user-engagement` index, and live on the
  WebSocket endpoint `/top-titles`, which the example's page (dashboard.html,
  in headless Chromium) shows: the newest window's ten most viewed titles;
- 30-minute sessions of long views per user, affinity by genre over all of a
  user's sessions, recommendations topped up from the profile: `rec:{user_id}`
  in Redis with a 2-hour TTL.

The pipeline is SIGKILLed halfway through the views and restarted: the results
are exact all the same. `user-views` is created with one partition so that event time reaches the
windows in order (with several, records of different input partitions meet in
the repartitioned windows in fetch order, and a window may close before a
straggler from another partition arrives: that is what `grace` is for). A
final view per user and per title, hours later, closes every earlier window.
Waits are failure guards only.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from browser import Browser
from compat import cf_create_topic
from examples_support import EXAMPLES, generated, produce_events
from sink_servers import PipelineProcess, TopicReader, WsListener, wait_for

PIPELINE = EXAMPLES / "engagement" / "pipeline.yaml"
WINDOW_MS = 5 * 60_000
GAP_MS = 30 * 60_000
START_MS = 1_790_000_000_000
INTERVAL_MS = 7_001  # never a whole fraction of the window or the gap: no ties
USERS = 40


@pytest.fixture(scope="module")
def opensearch():
    from osmem_server import OsmemServer

    s = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    yield s
    s.close()


def title_windows(views: list[dict], metadata: dict) -> dict:
    """(content_id, window_start) → the pipeline's result for that window."""
    acc: dict = defaultdict(lambda: {"count": 0, "sum": 0.0, "rates": []})
    for v in views:
        w = v["timestamp"] // WINDOW_MS * WINDOW_MS
        a = acc[(v["content_id"], w)]
        a["count"] += 1
        a["sum"] += v["watch_duration"]
        a["rates"].append(min(max(v["watch_duration"] / v["content_duration"], 0.0), 1.0))
    return {
        (c, w): {
            "content_id": c,
            "window_start": w,
            "window_end": w + WINDOW_MS,
            "count_by_content_id": a["count"],
            "sum_watch_duration": a["sum"],
            "calculate_completion_rate": sum(a["rates"]) / len(a["rates"]),
            "content": metadata.get(c),
        }
        for (c, w), a in acc.items()
    }


def recommendations(long_views: list[dict], profiles: dict) -> dict:
    """user → the value of `rec:{user}`: the user's last session, with affinity
    over all of the user's sessions."""
    by_user: dict = defaultdict(list)
    for v in long_views:
        by_user[v["user_id"]].append(v)
    out = {}
    for user, views in by_user.items():
        sessions: list[list[dict]] = []
        for v in views:
            if sessions and v["timestamp"] - sessions[-1][-1]["timestamp"] <= GAP_MS:
                sessions[-1].append(v)
            else:
                sessions.append([v])
        totals: dict = defaultdict(int)
        for s in sessions:
            for v in s:
                totals[v["genre"]] += 1
        last = sessions[-1]
        genres: dict = defaultdict(int)
        for v in last:
            genres[v["genre"]] += 1
        all_views = sum(totals.values())
        scores = {g: n / all_views for g, n in totals.items()}
        picks = [g for g, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))][:3]
        profile = profiles.get(user)
        for g in (profile or {}).get("preferred_genres", []):
            if len(picks) < 3 and g not in picks:
                picks.append(g)
        out[user] = {
            "user_id": user,
            "window_start": last[0]["timestamp"],
            "window_end": last[-1]["timestamp"] + 1,  # ends are exclusive, as for every window
            "count": len(last),
            "sum_watch_duration": float(sum(v["watch_duration"] for v in last)),
            "count_each_genre": dict(genres),
            "profile": profile,
            "affinity_scores": scores,
            "recommendations": picks,
        }
    return out


def same_window_result(got: dict, want: dict) -> bool:
    return (
        {k: got.get(k) for k in ("content_id", "window_start", "window_end", "count_by_content_id", "content")}
        == {k: want[k] for k in ("content_id", "window_start", "window_end", "count_by_content_id", "content")}
        and got["sum_watch_duration"] == pytest.approx(want["sum_watch_duration"])
        and got["calculate_completion_rate"] == pytest.approx(want["calculate_completion_rate"])
    )


def test_engagement_example_end_to_end(broker, redis_server, opensearch, workdir):
    metadata_events = generated("content-metadata", count=500, keys=500, seed=7)
    profile_events = generated("user-profiles", count=USERS, keys=USERS, seed=7)
    views = generated(
        "views", count=3000, keys=USERS, seed=7, start_ms=START_MS,
        event_interval_ms=INTERVAL_MS, invalid_fraction=0.02,
    )
    assert all(a["timestamp"] < b["timestamp"] for a, b in zip(views, views[1:])), "views in event-time order"
    metadata = {e["key"]: e["value"] for e in metadata_events}
    profiles = {e["key"]: e["value"] for e in profile_events}
    valid = [e["value"] for e in views if e["value"]["content_id"] is not None and e["value"]["watch_duration"] >= 0]
    assert len(valid) < len(views), "the generator made some invalid views"
    long_views = [v for v in valid if v["watch_duration"] * 2 >= v["content_duration"]]
    want_windows = title_windows(valid, metadata)
    want_recs = recommendations(long_views, profiles)

    # Tables first: the pipeline reads them as global tables, loaded before it
    # processes any view.
    produce_events(broker.bootstrap, metadata_events + profile_events)
    cf_create_topic(broker.bootstrap, "user-views", partitions=1)
    env = {"STROM_SINK_ELASTICSEARCH_URL": opensearch.url, "STROM_SINK_REDIS_URL": redis_server.url}
    p = PipelineProcess(workdir, PIPELINE, broker.bootstrap, env)
    p.start()
    output = TopicReader(broker.bootstrap, "processed-analytics")
    live: WsListener | None = None
    page = Browser()
    try:
        page.open(p.http + "/")
        page.wait_until("document.getElementById('status').textContent.startsWith('open')", "the page's socket open")
        # Half of the views, a SIGKILL in the middle of processing them, a restart on the
        # same state, the other half: exactly-once, so every result below is as if
        # nothing had happened.
        half = len(views) // 2
        produce_events(broker.bootstrap, views[:half])
        p.wait(
            lambda: (p.metric("strom_pipeline_operation_records_total", step="valid-views", operation="filter") or 0) >= 500,
            "500 views processed before the kill",
        )
        p.kill()
        page.wait_until("!document.getElementById('status').textContent.startsWith('open')", "the page's socket closed")
        p.start()
        page.wait_until("document.getElementById('status').textContent.startsWith('open')", "the page's socket open again")
        live = WsListener(p.ws_url("/top-titles"))
        produce_events(broker.bootstrap, views[half:])
        # Hours later: one long view per user and one view per title close every
        # earlier session and window (and open ones that stay open).
        flush_ms = views[-1]["timestamp"] + 3 * 3_600_000
        c0 = metadata["c0"]
        flush = [
            {"topic": "user-views", "key": u, "timestamp": flush_ms,
             "value": {"user_id": u, "content_id": "c0", "genre": c0["genre"], "watch_duration": c0["content_duration"],
                       "content_duration": c0["content_duration"], "timestamp": flush_ms}}
            for u in sorted(profiles)
        ] + [
            {"topic": "user-views", "key": "u0", "timestamp": flush_ms,
             "value": {"user_id": "u0", "content_id": c, "genre": metadata[c]["genre"], "watch_duration": 0,
                       "content_duration": metadata[c]["content_duration"], "timestamp": flush_ms}}
            for c in sorted({c for c, _ in want_windows})
        ]
        produce_events(broker.bootstrap, flush)

        # Kafka, exactly once: one result per closed window, none for the open ones.
        def all_windows():
            got = [v for _, v, _ in output.read()]
            return got if len(got) >= len(want_windows) else None

        got = p.wait(all_windows, f"{len(want_windows)} window results on processed-analytics", timeout=180)
        keys = [(v["content_id"], v["window_start"]) for v in got]
        assert len(keys) == len(set(keys)), "a window result appeared twice"
        assert set(keys) == set(want_windows)
        for v in got:
            want = want_windows[(v["content_id"], v["window_start"])]
            assert same_window_result(v, want), (v, want)

        # The search index: the same results, one document per title and window.
        def documents():
            opensearch.request("POST", "/user-engagement/_refresh")
            hits = opensearch.request("GET", f"/user-engagement/_search?size={len(want_windows) + 100}")["hits"]["hits"]
            return hits if len(hits) >= len(want_windows) else None

        docs = {h["_id"]: h["_source"] for h in p.wait(documents, "the user-engagement documents")}
        assert set(docs) == {f"{c}@{w}" for c, w in want_windows}
        for (c, w), want in want_windows.items():
            assert same_window_result(docs[f"{c}@{w}"], want), (docs[f"{c}@{w}"], want)

        # Redis: each user's last closed session, affinity and recommendations.
        r = redis_server.client()

        def recs():
            keys = r.keys("rec:*")
            if len(keys) < len(want_recs):
                return None
            return {k.removeprefix("rec:"): json.loads(r.get(k)) for k in keys}

        got_recs = p.wait(recs, f"rec:* for {len(want_recs)} users")
        assert set(got_recs) == set(want_recs)
        for user, want in want_recs.items():
            # The last session is written last: wait for it, then compare all of it.
            wait_for(
                lambda: json.loads(r.get(f"rec:{user}"))["window_end"] == want["window_end"],
                f"rec:{user} of the session ending at {want['window_end']} (now {r.get(f'rec:{user}')})",
            )
            v = json.loads(r.get(f"rec:{user}"))
            exact = ("user_id", "window_start", "window_end", "count", "count_each_genre", "profile", "recommendations")
            assert {k: v.get(k) for k in exact} == {k: want[k] for k in exact}, (user, v, want)
            assert v["sum_watch_duration"] == pytest.approx(want["sum_watch_duration"])
            assert v["affinity_scores"] == pytest.approx(want["affinity_scores"]), (user, v)
            assert 0 < r.ttl(f"rec:{user}") <= 2 * 3600

        # Live: every result the page's socket got is one of the expected ones.
        received = live.messages
        assert received, "no result reached /top-titles"
        for v in received:
            assert same_window_result(v, want_windows[(v["content_id"], v["window_start"])]), v

        # The page: the newest closed window first, its ten most viewed titles.
        newest = max(w for _, w in want_windows)
        top = sorted(
            ((c, v) for (c, w), v in want_windows.items() if w == newest),
            key=lambda cv: (-cv[1]["count_by_content_id"], cv[0]),
        )[:10]
        want_rows = [[c, v["content"]["title"], str(v["count_by_content_id"])] for c, v in top]
        page.wait_until(
            "document.querySelector('section').dataset.window",
            f"the newest window {newest} shown first",
            check=lambda w: w == str(newest),
        )
        page.wait_until(
            """Array.from(document.querySelectorAll('section')[0].querySelectorAll('tbody tr'), tr =>
                 ['content_id', 'content.title', 'count_by_content_id'].map(f => tr.querySelector(`[data-field="${f}"]`).innerText))""",
            f"the top titles of window {newest}: {want_rows}",
            check=lambda rows: rows == want_rows,
        )
    finally:
        page.close()
        if live is not None:
            live.close()
        output.close()
        p.close()
