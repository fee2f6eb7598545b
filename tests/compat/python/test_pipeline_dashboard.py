"""A pipeline's live views in headless Chromium (browser.py).

`strom pipeline run` against the module's `strom serve` (conftest's `broker`),
its pages opened in Chromium:

- `dashboard_example/`: a pipeline with its own page (`dashboard:`), a page in
  the style of the examples' (live.js, a script and a stylesheet served from
  /dashboard/): views per title in 10-second windows; the page must show exactly
  the counts produced, per window and title, top titles first.
- the built-in view at `/` of a pipeline without a page: the live table of its
  WebSocket endpoint, newest first, with the messages received; it reconnects
  by itself when the pipeline restarts.
- live.js alone (the helper the examples' pages build on), in a blank page:
  latest row per key, its bound, row keys, and tables that show data as text.

A WebSocket endpoint sends only what is published while a client is connected,
and its sink starts reading at the end of its topic: so each test first sends
`warmup` records, one window at a time (each closing the window before it),
until the page shows one — from then on every result reaches the page — and
only then the records whose counts it checks. Every wait is a failure guard
(60 s) that polls for an exact expected state.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from browser import Browser
from compat import cf_produce_all, cf_producer, now_ms
from sink_servers import PipelineProcess

EXAMPLE = Path(__file__).resolve().parent / "dashboard_example"
WINDOW_MS = 10_000


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def run_pipeline(pipelines, workdir: Path, file: Path, bootstrap: str) -> PipelineProcess:
    p = PipelineProcess(workdir, file, bootstrap)
    pipelines.append(p)
    p.start()
    return p


class Windows:
    """Event times in 10-second windows, from a window boundary in the recent past
    (the topic's retention keeps such records)."""

    def __init__(self):
        self.base = (now_ms() // WINDOW_MS - 1000) * WINDOW_MS

    def start(self, i: int) -> int:
        return self.base + i * WINDOW_MS


def produce(bootstrap: str, topic: str, records) -> None:
    """records: JSON values, keyed by their first field's value."""
    cf_produce_all(
        cf_producer(bootstrap),
        [{"key": str(next(iter(v.values()))).encode(), "value": json.dumps(v).encode()} for v in records],
        topic,
    )


def warm_up(p: PipelineProcess, bootstrap: str, topic: str, field: str, windows: Windows, first: int, shown) -> int:
    """Sends a `warmup` record in window `first`, `first`+1, … (each closes the
    window before it) until `shown(start)` says the page shows a warmup result
    of a window from `windows.start(first)` on. Returns the next unused window."""
    sent = [first - 1]

    def page_shows_one():
        if shown(windows.start(first)):
            return True
        sent[0] += 1
        produce(bootstrap, topic, [{field: "warmup", "at": windows.start(sent[0])}])
        return False

    p.wait(page_shows_one, "a warmup result on the page (the whole path is live)")
    return sent[0] + 1


# --------------------------------------------------------------------------
# 1. a pipeline's own page (dashboard:)
# --------------------------------------------------------------------------

SECTIONS_JS = """Array.from(document.querySelectorAll('#windows section'), s =>
    [Number(s.dataset.window), Array.from(s.querySelectorAll('tbody tr'), tr => Array.from(tr.cells, c => c.innerText))])"""


def test_pipeline_page_shows_exact_counts_per_title(broker, workdir, pipelines, browser):
    example = workdir / "example"
    shutil.copytree(EXAMPLE, example)
    p = run_pipeline(pipelines, workdir, example / "pipeline.yaml", broker.bootstrap)
    browser.open(p.http + "/")
    assert browser.eval("document.title") == "Top titles", "/ serves the pipeline's own page"
    # The stylesheet beside the page was served and applied.
    assert browser.eval("getComputedStyle(document.querySelector('section') || document.body).fontFamily").startswith("system-ui")
    browser.wait_until("document.getElementById('status').textContent.startsWith('open')", "the page's WebSocket open")

    windows = Windows()
    shown = lambda start: any(  # noqa: E731
        w >= start and rows == [["warmup", "1"]] for w, rows in browser.eval(SECTIONS_JS)
    )
    d1 = warm_up(p, broker.bootstrap, "dashboard-views", "title", windows, 0, shown)
    d2 = d1 + 1
    views = {d1: {"alpha": 3, "beta": 5, "gamma": 1}, d2: {"alpha": 2, "beta": 1, "delta": 4}}
    records = []
    for w, counts in views.items():
        n = 0
        for title, count in counts.items():
            for _ in range(count):
                records.append({"title": title, "at": windows.start(w) + n * 100})
                n += 1
    # A record two windows on closes both.
    records.append({"title": "closer", "at": windows.start(d2 + 2)})
    produce(broker.bootstrap, "dashboard-views", records)

    # Newest window first; in each, titles by views.
    want = [
        [windows.start(d2), [["delta", "4"], ["alpha", "2"], ["beta", "1"]]],
        [windows.start(d1), [["beta", "5"], ["alpha", "3"], ["gamma", "1"]]],
    ]
    sections = browser.wait_until(SECTIONS_JS, "the two windows' counts on the page", check=lambda s: s[:2] == want)
    # Every other window is a warmup window, of one view, the newest first; the
    # window the closer opened has not closed.
    rest = sections[2:]
    assert rest and all(rows == [["warmup", "1"]] for _, rows in rest), rest
    assert [w for w, _ in rest] == sorted((w for w, _ in rest), reverse=True), rest
    # One result per window and title: every message received is a row.
    status = browser.text("#status")
    m = re.fullmatch(r"open · (\d+) results · (\d+) rows", status)
    assert m and int(m.group(1)) == int(m.group(2)) == 6 + len(rest), status


# --------------------------------------------------------------------------
# 2. the built-in view at / (no dashboard:)
# --------------------------------------------------------------------------

BUILTIN = """\
pipeline:
  name: dashboard-builtin
  event_time: at
  input_topics:
    - {topic: dashboard-builtin, partitions: 1}
  processors:
    - name: per-user
      type: tumbling-window
      window_size: 10 seconds
      operations: [count_by_user, sum_amount]
  output_sinks:
    - type: websocket
      endpoint: /user-totals
"""

SECTION = "section[data-path='/user-totals']"
ROWS_JS = f"""Array.from(document.querySelectorAll("{SECTION} tbody tr"), tr =>
    [tr.dataset.id, Object.fromEntries(Array.from(tr.cells, td => [td.dataset.field, JSON.parse(td.dataset.value || 'null')]))])"""


def status(browser) -> dict:
    return browser.eval(
        f"""{{state: document.querySelector("{SECTION} .state").textContent,
             received: Number(document.querySelector("{SECTION} .received").textContent),
             rows: Number(document.querySelector("{SECTION} .row-count").textContent),
             connects: Number(document.querySelector("{SECTION} .connects").textContent)}}"""
    )


def user_records(windows: Windows, w: int, amounts: dict) -> list[dict]:
    return [
        {"user": user, "amount": a, "at": windows.start(w) + i * 100}
        for i, (user, a) in enumerate((u, a) for u, values in amounts.items() for a in values)
    ]


def result(windows: Windows, w: int, user: str, amounts: list) -> tuple[str, dict]:
    start = windows.start(w)
    return f"{user}@{start}", {
        "user": user,
        "count_by_user": len(amounts),
        "sum_amount": sum(amounts),
        "window_start": start,
        "window_end": start + WINDOW_MS,
    }


def test_builtin_page_shows_latest_results_and_reconnects(broker, workdir, pipelines, browser):
    file = workdir / "builtin.yaml"
    file.write_text(BUILTIN)
    p = run_pipeline(pipelines, workdir, file, broker.bootstrap)
    browser.open(p.http + "/")
    browser.wait_until("document.getElementById('pipeline').textContent === 'dashboard-builtin'", "the pipeline's name")
    browser.wait_until(f"""document.querySelector("{SECTION} .state").textContent === 'open'""", "/user-totals connected")
    browser.wait_until("document.getElementById('summary').textContent.startsWith('running')", "the summary line")

    windows = Windows()
    shown = lambda start: any(  # noqa: E731
        i.startswith("warmup@") and v["window_start"] >= start for i, v in browser.eval(ROWS_JS)
    )
    d1 = warm_up(p, broker.bootstrap, "dashboard-builtin", "user", windows, 0, shown)
    d2 = d1 + 1
    amounts = {d1: {"u1": [10, 20, 5], "u2": [7]}, d2: {"u1": [1, 2], "u3": [4, 4, 4, 4]}}
    records = [r for w, a in amounts.items() for r in user_records(windows, w, a)]
    records.append({"user": "closer", "amount": 0, "at": windows.start(d2 + 2)})
    produce(broker.bootstrap, "dashboard-builtin", records)

    want = dict(result(windows, w, u, a) for w, per_user in amounts.items() for u, a in per_user.items())
    rows = browser.wait_until(ROWS_JS, "the four results in the table", check=lambda rows: {i: v for i, v in rows if i in want} == want)
    # Newest first: the second window's results (closed last), the first's, then
    # the warmup windows, each closed before the next.
    ids = [i for i, _ in rows]
    assert set(ids[:2]) == {f"u1@{windows.start(d2)}", f"u3@{windows.start(d2)}"}, ids
    assert set(ids[2:4]) == {f"u1@{windows.start(d1)}", f"u2@{windows.start(d1)}"}, ids
    warmups = [v["window_start"] for _, v in rows[4:]]
    assert all(i.startswith("warmup@") for i in ids[4:]) and warmups == sorted(warmups, reverse=True), ids
    s = status(browser)
    assert s == {"state": "open", "received": len(rows), "rows": len(rows), "connects": 1}, s

    # The pipeline restarts: the page sees its socket close, reopens it by
    # itself, keeps what it showed and shows what comes next.
    p.stop()
    browser.wait_until(f"""document.querySelector("{SECTION} .state").textContent !== 'open'""", "the page seeing its socket close")
    p.start()
    browser.wait_until(f"""Number(document.querySelector("{SECTION} .connects").textContent) === 2""", "the page reconnected")
    d3 = warm_up(p, broker.bootstrap, "dashboard-builtin", "user", windows, d2 + 3, shown)
    produce(
        broker.bootstrap,
        "dashboard-builtin",
        [*user_records(windows, d3, {"u1": [100]}), {"user": "closer", "amount": 0, "at": windows.start(d3 + 2)}],
    )
    key, value = result(windows, d3, "u1", [100])
    after = browser.wait_until(ROWS_JS, "the result after the restart on top", check=lambda rows: rows and rows[0] == [key, value])
    assert {i: v for i, v in after if i in want} == want, "the rows from before the restart stay"
    s = status(browser)
    assert s["state"] == "open" and s["connects"] == 2 and s["rows"] == len(after), s



# --------------------------------------------------------------------------
# 3. live.js on its own, for the pages built on it
# --------------------------------------------------------------------------

LIVE_JS = Path(__file__).resolve().parents[3] / "crates" / "pipeline" / "src" / "dashboard" / "assets" / "live.js"


def test_live_js_keeps_the_latest_row_per_key_within_its_bound(browser):
    browser.open("about:blank")
    browser.run(LIVE_JS.read_text())
    got = browser.run(
        """
        const t = strom.latest({limit: 3});
        const put = (key, value) => t.put({key, value}).id;
        const ids = [put("c1", {window_start: 0, n: 1}), put("c1", {n: 2}), put("c2", {window_start: 0, n: 3})];
        put("c1", {window_start: 0, n: 4});  // an update moves its row to the top
        put("c3", {n: 5});                   // a fourth row drops the least recently updated (c1)
        const byFields = strom.latest({key: ["user", "w.start"]});
        const fieldsId = byFields.put({key: "ignored", value: {user: "u1", w: {start: 7}}}).id;
        const byFunction = strom.latest({key: (m) => m.value.id});
        const functionId = byFunction.put({key: "k", value: {id: "x"}}).id;
        const el = document.createElement("div");
        strom.table(el, t.rows());
        return {
          ids, size: t.size, rows: t.rows().map(r => [r.id, r.value.n]), fieldsId, functionId,
          head: Array.from(el.querySelectorAll("th"), th => th.textContent),
          cells: Array.from(el.querySelectorAll("tbody tr"), tr => [tr.dataset.id, Array.from(tr.cells, c => [c.dataset.field, c.textContent])]),
        };
        """
    )
    assert got["ids"] == ["c1@0", "c1", "c2@0"], got
    assert got["size"] == 3 and got["rows"] == [["c3", 5], ["c1@0", 4], ["c2@0", 3]], got
    assert got["fieldsId"] == '["u1",7]' and got["functionId"] == "x", got
    # The window first, then text fields, then the rest; one cell per column.
    assert got["head"] == ["window_start", "n"], got
    assert got["cells"][1] == ["c1@0", [["window_start", "0"], ["n", "4"]]], got

    # Values are text, never markup; numbers and times are formatted for reading.
    out = browser.run(
        """
        const el = document.createElement("div");
        strom.table(el, [{id: "x", value: {name: "<b>bold</b>", ratio: 2/3, window_start: Date.UTC(2026, 0, 2, 3, 4, 5)}}]);
        return {bold: el.querySelectorAll("b").length, cells: Array.from(el.querySelectorAll("td"), c => c.textContent)};
        """
    )
    offset_min = browser.eval("new Date(Date.UTC(2026, 0, 2, 3, 4, 5)).getTimezoneOffset()")
    local = datetime(2026, 1, 2, 3, 4, 5) - timedelta(minutes=offset_min)
    assert out["bold"] == 0, out
    assert out["cells"] == [local.strftime("%Y-%m-%d %H:%M:%S"), "<b>bold</b>", "0.667"], out
