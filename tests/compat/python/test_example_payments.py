"""The payments example (examples/payments) end to end, exactly once through SIGKILLs.

Its `pipeline.yaml` runs verbatim (the PostgreSQL URL from STROM_SINK_POSTGRES_URL,
as the example's run.sh gives it) against the module's `strom serve` and a
PostgreSQL cluster holding the example's `schema.sql`. The input is what
`strom generate payments` prints with a fixed seed (some amounts negative), plus
payments re-sent later as they were and a few malformed ones; the pipeline is
SIGKILLed three times while they are produced. The expectations — each
confirmation's status and balance, each account's final balance — are computed
here, independently, from the generator's output with Python's Decimal. Then the
example's page, in headless Chromium, shows the new balances of three more payments.

Every wait is a failure guard that polls for an exact expected state.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from decimal import Decimal, InvalidOperation

from compat import cf_produce_all, cf_producer
from browser import Browser
from conftest import REPO
from examples_support import generated
from sink_servers import PipelineProcess, TopicReader, wait_for

EXAMPLE = REPO / "examples" / "payments"
PIPELINE = "payment-processor"  # the file's pipeline name: its consumer group and topic prefix
SEED = 1717
COUNT = 3000
ACCOUNTS = 40
START_MS = 1_767_225_600_000  # 2026-01-01: every event time is fixed, not "now"
RESEND_EVERY = 9  # every 9th generated payment is sent again ...
RESEND_AFTER = 40  # ... 40 records later, exactly as it was
CHUNKS = 4  # produced in 4 parts; the pipeline is killed during the first 3 ...
KILL_AFTER = 150  # ... once it has processed this many records since it started
GUARD_S = 180.0  # the drain after three kills waits out group sessions (10 s each)


def load() -> list[tuple[str, str, int]]:
    """The records to produce, in order: (key, value as JSON text, timestamp)."""
    events = generated(
        "payments", count=COUNT, seed=SEED, keys=ACCOUNTS,
        invalid_fraction=0.05, late_fraction=0.02, start_ms=START_MS,
    )
    assert len(events) == COUNT
    assert {e["topic"] for e in events} == {"payments"}
    records: list[tuple[str, str, int]] = []
    resend: dict[int, list[dict]] = defaultdict(list)
    for i, e in enumerate(events):
        records.append((e["key"], json.dumps(e["value"]), e["timestamp"]))
        if i % RESEND_EVERY == 0:
            resend[i + RESEND_AFTER].append(e)
        for again in resend.pop(i, []):
            records.append((again["key"], json.dumps(again["value"]), again["timestamp"]))
    t = START_MS + COUNT * 100
    malformed = [
        {"payment_id": "x-usd", "account_id": "a1", "amount": 10.5, "currency": "USD"},
        {"payment_id": "x-text", "account_id": "a2", "amount": "ten", "currency": "EUR"},
        {"account_id": "a3", "amount": 5, "currency": "EUR"},
        {"payment_id": "x-noaccount", "amount": 5, "currency": "EUR"},
        {"payment_id": "x-subcent", "account_id": "a4", "amount": 1.005, "currency": "EUR"},
        {"payment_id": "x-zero", "account_id": "a5", "amount": 0, "currency": "EUR"},
        # Money as a string is exact too.
        {"payment_id": "x-string", "account_id": "a6", "amount": "0.10", "currency": "EUR"},
        {"payment_id": "x-string", "account_id": "a6", "amount": "0.10", "currency": "EUR"},
    ]
    for n, v in enumerate(malformed):
        v["timestamp"] = t + n
        records.insert(len(records) * (n + 1) // (len(malformed) + 1), (v.get("account_id", "a7"), json.dumps(v), t + n))
    return records


def processed(p: PipelineProcess) -> float:
    """Records `process_payment` handled since this pipeline process started (its
    /metrics); fails if the process died."""
    code = p.proc.poll()
    assert code is None, f"{p.name} exited with {code}"
    return p.metric("strom_pipeline_operation_records_total", operation="process_payment") or 0


def cents(amount) -> int | None:
    """An amount as whole cents, or None when it is not a decimal number of cents."""
    if isinstance(amount, bool) or amount is None:
        return None
    try:
        c = Decimal(str(amount)) * 100
    except InvalidOperation:
        return None
    return int(c) if c == c.to_integral_value() else None


def expected(records) -> tuple[dict, dict]:
    """Per record key, the confirmations in order as (payment id, status, balance cents
    after it); and per account with completed payments, (balance cents, completed
    payments, last payment id)."""
    applied: dict[str, set] = defaultdict(set)
    balance: dict[str, int] = defaultdict(int)
    done: dict[str, int] = defaultdict(int)
    last: dict[str, str] = {}
    out: dict[str, list] = defaultdict(list)
    for key, text, _ in records:
        # parse_float=Decimal: the amount exactly as written.
        v = json.loads(text, parse_float=Decimal)
        account, pid = v.get("account_id"), v.get("payment_id")
        if not account:
            out[key].append((pid, "rejected", None))
            continue
        if not pid:
            status = "rejected"
        elif pid in applied[account]:
            status = "duplicate"
        else:
            c = cents(v.get("amount"))
            if c is None or c <= 0 or v.get("currency") != "EUR":
                status = "rejected"
            else:
                status = "completed"
                applied[account].add(pid)
                balance[account] += c
                done[account] += 1
                last[account] = pid
        out[account].append((pid, status, balance[account]))
    final = {a: (balance[a], done[a], last[a]) for a in done}
    return dict(out), final


def test_payments_example_is_exact_through_sigkills(broker, postgres, workdir):
    postgres.query((EXAMPLE / "schema.sql").read_text())
    records = load()
    want_confirmations, want_balances = expected(records)
    # The load has every kind of outcome.
    statuses = {s for per_key in want_confirmations.values() for _, s, _ in per_key}
    assert statuses == {"completed", "rejected", "duplicate"}

    p = PipelineProcess(workdir, EXAMPLE / "pipeline.yaml", broker.bootstrap, {"STROM_SINK_POSTGRES_URL": postgres.url})
    out: TopicReader | None = None
    try:
        p.start()
        out = TopicReader(broker.bootstrap, "payment-confirmations")
        size = -(-len(records) // CHUNKS)
        chunks = [records[i : i + size] for i in range(0, len(records), size)]
        go = [threading.Event() for _ in chunks]
        failure: list[BaseException] = []

        def producer():
            try:
                # Idempotent: records of one account stay in order through retries.
                prod = cf_producer(broker.bootstrap, enable_idempotence=True)
                for chunk, event in zip(chunks, go):
                    assert event.wait(GUARD_S), "the test stopped releasing chunks"
                    for i in range(0, len(chunk), 25):
                        part = chunk[i : i + 25]
                        reports = cf_produce_all(
                            prod,
                            [{"key": k.encode(), "value": v.encode(), "timestamp": ts} for k, v, ts in part],
                            "payments",
                        )
                        assert all(err is None for err, _ in reports), reports
                        time.sleep(0.02)
            except BaseException as e:  # reported by the main thread
                failure.append(e)

        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        for kill in range(CHUNKS - 1):
            go[kill].set()
            # Killed as soon as this instance has processed KILL_AFTER records: in the
            # middle of the load, with records processed but not yet committed.
            wait_for(
                lambda: processed(p) >= KILL_AFTER,
                f"{KILL_AFTER} records processed before kill {kill + 1}",
                timeout=GUARD_S,
                interval=0.005,
                logs=[p, postgres],
            )
            p.kill()
            p.start()
        go[-1].set()
        thread.join(GUARD_S)
        assert not failure, f"producer failed: {failure[0]!r}"
        assert not thread.is_alive(), "producer did not finish"

        # Every payment confirmed: as many confirmations as records sent.
        p.wait(lambda: len(out.read()) >= len(records), f"{len(records)} confirmations", timeout=GUARD_S, logs=[postgres])
        got: dict[str, list] = defaultdict(list)
        for key, c, _ in out.read():
            got[key].append((c["payment_id"], c["status"], c.get("balance_cents")))
            if c.get("balance_cents") is not None:
                # The decimal balance is exactly the cents.
                assert Decimal(str(c["balance"])) * 100 == c["balance_cents"], c
        # Read committed, each record confirmed once, in order per account, with the
        # right status and the balance after it: nothing lost, nothing applied twice,
        # no aborted attempt visible.
        for key in sorted(set(want_confirmations) | set(got)):
            assert got.get(key) == want_confirmations.get(key), f"confirmations of {key}"
        assert sum(map(len, got.values())) == len(records)
        completed = [c[0] for per_key in got.values() for c in per_key if c[1] == "completed"]
        assert len(completed) == len(set(completed)), "a payment id completed twice"

        def balances() -> dict:
            rows = postgres.query(
                "SELECT account_id, currency, balance::text, balance_cents, completed_payments, payment_id FROM account_balances"
            )
            return {r[0]: (r[1], Decimal(r[2]), int(r[3]), int(r[4]), r[5]) for r in rows}

        want_rows = {a: ("EUR", Decimal(c) / 100, c, n, last) for a, (c, n, last) in want_balances.items()}
        try:
            p.wait(lambda: balances() == want_rows, "account_balances equal to the expected balances", timeout=GUARD_S, logs=[postgres])
        except AssertionError as e:
            have = balances()
            diff = {a: (want_rows.get(a), have.get(a)) for a in set(want_rows) | set(have) if want_rows.get(a) != have.get(a)}
            raise AssertionError(f"{e}\n(expected, got) per differing account: {diff}") from None
        # The page (dashboard.html, in headless Chromium) shows balances as they change:
        # three more payments, and their accounts' new balances on it.
        with Browser() as page:
            page.open(p.http + "/")
            page.wait_until("document.getElementById('status').textContent.startsWith('open')", "the page's socket open")
            accounts = sorted(want_balances)[:3]
            extra = [(a, {"payment_id": f"page-{a}", "account_id": a, "amount": "12.34", "currency": "EUR", "timestamp": START_MS}) for a in accounts]
            prod = cf_producer(broker.bootstrap, enable_idempotence=True)
            reports = cf_produce_all(prod, [{"key": a.encode(), "value": json.dumps(v).encode()} for a, v in extra], "payments")
            assert all(err is None for err, _ in reports), reports
            for a in accounts:
                cents_after, n, _ = want_balances[a]
                want_balances[a] = (cents_after + 1234, n + 1, f"page-{a}")
            want_page = {a: f"{Decimal(want_balances[a][0]) / 100:.2f} EUR" for a in accounts}
            page.wait_until(
                """Object.fromEntries(Array.from(document.querySelectorAll('#balances tbody tr'), tr =>
                     [tr.dataset.id, tr.querySelector('[data-field="balance"]').innerText]))""",
                f"the page's balances of {accounts}: {want_page}",
                check=lambda shown: {a: shown.get(a) for a in accounts} == want_page,
            )
        want_rows = {a: ("EUR", Decimal(c) / 100, c, n, last) for a, (c, n, last) in want_balances.items()}
        p.wait(lambda: balances() == want_rows, "account_balances with the page's payments", timeout=GUARD_S, logs=[postgres])
        # Nothing was refused on the way.
        dlq = TopicReader(broker.bootstrap, f"{PIPELINE}-dlq")
        try:
            assert dlq.read() == []
        finally:
            dlq.close()
        code = p.stop()
        assert code == 0, f"pipeline exited with {code} on SIGTERM"
        assert balances() == want_rows, "account_balances changed after the load"
    finally:
        if out is not None:
            out.close()
        p.close()
