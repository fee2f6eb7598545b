"""examples/message-delivery end to end: the example's pipeline.yaml verbatim
against `strom serve`, two webhook receivers (push, SMS), WebSocket clients and
the example's page in headless Chromium, fed by `strom generate` (seeded, with
invalid messages), with every result compared to what this file computes
independently from the same generated events:

- which messages were dead-lettered, with the exact reason (no sender, a sender
  who is not a member of the chat, spam);
- one delivery per member of the chat but the sender, by presence (the
  `user-presence` table): online → WebSocket `/online_users`, seen less than an
  hour before the message → push webhook, others → `stored-messages`; a message
  marked `delivery_failed` → SMS webhook at once; content sealed with AES-GCM
  (opened here with the same key);
- each delivery's confirmations (delivered, then read) → receipts to the sender
  on `read-receipts` and `/receipts?key=<sender>`, with the latency;
- unconfirmed WebSocket and push deliveries re-sent after 1, then 2 minutes of
  event time, and by SMS after 4 more; every state change on `delivery-status`;
- stored messages forwarded over WebSocket when their recipient comes online;
- delivery latency per channel in 5-minute windows; conversations per chat
  (30-minute sessions): messages and who wrote them.

Phases keep the one nondeterministic input — presence changes, which the
pipeline reads both as a table and as a stream — apart from the messages: the
presence events are produced (and the tracking stage has consumed them) before
any message, and the users coming online at the end only once every message has
been handled. `incoming-messages` and `user-presence` are created with one
partition, so the pipeline's single task sees messages and confirmations in the
order produced, and its delivery clock (the latest event time of deliveries and
confirmations) moves as this file's model does. A last message, six hours
later, closes every earlier window and session and ends every retry budget.
Waits are failure guards only.
"""

from __future__ import annotations

import base64
import os
from collections import Counter, defaultdict

import pytest
from browser import Browser
from compat import cf_create_topic
from examples_support import EXAMPLES, generated, produce_events
from sink_servers import HttpRecorder, PipelineProcess, TopicReader, WsListener

PIPELINE = EXAMPLES / "message-delivery" / "pipeline.yaml"
NAME = "message-delivery-system"
CHATS = 16
SEED = 8
COUNT = 1500
START_MS = 1_790_000_000_000
INTERVAL_MS = 10_001
BACKOFF_MS = 60_000
MAX_ATTEMPTS = 3
PUSH_WITHIN_MS = 3_600_000
HORIZON_MS = 7 * 24 * 3_600_000
LATENCY_WINDOW_MS = 5 * 60_000
GAP_MS = 30 * 60_000
WARM_MS = START_MS - 2 * 24 * 3_600_000
WARM_CHAT = "chat-warm"
ROWS = 50  # messages the page shows


def fnv1a(text: str) -> int:
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h


class Model:
    """The delivery-tracking stage as specified (crates/pipeline/src/delivery):
    one store of deliveries per (recipient, message), a delivery clock, due
    entries handled oldest first once the clock reaches them."""

    def __init__(self, members: dict, presence: dict):
        self.members = members
        self.presence = presence
        self.deliveries: dict = {}  # (recipient, message) → dict
        self.due: dict = {}  # (t, recipient, message) → kind
        self.stored: set = set()  # (recipient, message)
        self.clock: int | None = None
        self.scanned = 0
        self.out: list = []  # (key, value) of every record leaving the stage
        self.dead: dict = {}  # (type, message id) → reason
        self.valid: list = []  # messages that passed validation

    # -- validation and routing -------------------------------------------

    def reason(self, m: dict) -> str | None:
        sender, chat = m.get("sender_id"), m["chat_id"]
        if sender is None:
            return "no sender_id: the sender is unknown"
        members = self.members.get(chat)
        if members is None:
            return f'chat "{chat}" has no members (chat.members is not a list)'
        if sender not in members:
            return f'sender {sender} is not a member of chat "{chat}"'
        text = m["content"].lower()
        if "lottery" in text:
            return 'spam: blocked word "lottery"'
        links = text.count("http://") + text.count("https://")
        if links > 2:
            return f"spam: {links} links (at most 2)"
        return None

    def channel(self, m: dict, recipient: str) -> str:
        if m.get("delivery_failed"):
            return "sms"
        p = self.presence.get(recipient)
        if p and p.get("online"):
            return "websocket"
        seen = p.get("last_seen", p.get("timestamp")) if p else None
        if seen is not None and m["timestamp"] - seen < PUSH_WITHIN_MS:
            return "push"
        return "stored"

    # -- the store ----------------------------------------------------------

    def schedule(self, d: dict, t: int | None, kind: str | None) -> None:
        if d["due"] is not None:
            self.due.pop((d["due"][0], d["recipient_id"], d["message_id"]), None)
            d["due"] = None
        if t is not None:
            t = max(t, self.scanned)
            self.due[(t, d["recipient_id"], d["message_id"])] = kind
            d["due"] = (t, kind)

    def send_record(self, d: dict) -> dict:
        return {
            "message_id": d["message_id"], "recipient_id": d["recipient_id"], "chat_id": d["chat_id"],
            "sender_id": d["sender_id"], "status": d["status"], "channel": d["channel"],
            "attempt": d["attempt"], "sent_at": d["sent_at"], "forwarded": d["forwarded"],
            "timestamp": d["last_sent_at"],
        }

    def emit(self, key: str, value: dict) -> None:
        self.out.append((key, value))

    def retry_op(self, recipient: str, message: str, t: int) -> None:
        """manage_retry_logic for a record that reached it."""
        d = self.deliveries.get((recipient, message))
        if d and d["attempt"] == 1 and d["status"] in ("websocket", "push") and (d["due"] or (0, ""))[1] != "retry":
            self.schedule(d, d["last_sent_at"] + BACKOFF_MS * 2 ** (d["attempt"] - 1), "retry")
        self.clock = t if self.clock is None else max(self.clock, t)
        self.release()

    def release(self) -> None:
        if self.clock < self.scanned:
            return
        while True:
            due = sorted(k for k in self.due if self.scanned <= k[0] <= self.clock)
            if not due:
                break
            for key in due:
                kind = self.due.pop(key)
                t, recipient, message = key
                d = self.deliveries[(recipient, message)]
                assert d["due"] == (t, kind)
                d["due"] = None
                if kind == "expire":
                    raise AssertionError(f"nothing expires within the test's span: {d}")
                if d["attempt"] < MAX_ATTEMPTS:
                    d["attempt"] += 1
                    d["last_sent_at"] = t
                    self.schedule(d, t + BACKOFF_MS * 2 ** (d["attempt"] - 1), "retry")
                else:
                    d["channel"] = d["status"] = "sms"
                    d["last_sent_at"] = t
                    self.schedule(d, t + HORIZON_MS, "expire")
                self.emit(recipient, self.send_record(d))
        self.scanned = self.clock + 1

    # -- records --------------------------------------------------------------

    def message(self, m: dict) -> None:
        why = self.reason(m)
        if why is not None:
            self.dead[("message", m["message_id"])] = why
            return
        self.valid.append(m)
        t = m["timestamp"]
        recipients = [u for u in self.members[m["chat_id"]] if u != m["sender_id"]]
        for r in recipients:
            channel = self.channel(m, r)
            d = {
                "message_id": m["message_id"], "recipient_id": r, "chat_id": m["chat_id"],
                "sender_id": m["sender_id"], "channel": channel, "status": channel,
                "attempt": 1 if channel in ("websocket", "push") else 0, "sent_at": t,
                "last_sent_at": t, "due": None, "forwarded": False, "content": m["content"],
            }
            self.deliveries[(r, m["message_id"])] = d
            self.schedule(d, t + HORIZON_MS, "expire")
            if channel == "stored":
                self.stored.add((r, m["message_id"]))
            self.emit(r, self.send_record(d))
            self.retry_op(r, m["message_id"], t)

    def confirmation(self, c: dict) -> None:
        r, mid, t = c["recipient_id"], c["message_id"], c["timestamp"]
        d = self.deliveries.get((r, mid))
        if d is None:
            self.dead[("delivery_confirmation", mid)] = f"no delivery of {mid} to {r} to confirm"
            return
        status = "read" if c.get("status") == "read" else "delivered"
        rank = {"read": 2, "delivered": 1}
        if rank[status] <= rank.get(d["status"], 0):
            return  # a repeat: dropped, the clock does not move
        d["status"] = status
        self.stored.discard((r, mid))
        self.schedule(d, t + HORIZON_MS, "expire")
        self.emit(d["sender_id"], {
            "message_id": mid, "chat_id": d["chat_id"], "sender_id": d["sender_id"], "recipient_id": r,
            "channel": d["channel"], "attempt": d["attempt"], "status": status, "sent_at": d["sent_at"],
            "latency_ms": t - d["sent_at"], "timestamp": t,
        })
        self.retry_op(r, mid, t)

    def online(self, user: str, t: int) -> None:
        for r, mid in sorted(k for k in self.stored if k[0] == user):
            self.stored.discard((r, mid))
            d = self.deliveries[(r, mid)]
            d.update(channel="websocket", status="websocket", attempt=1, last_sent_at=t, forwarded=True)
            self.schedule(d, t + HORIZON_MS, "expire")
            self.emit(user, self.send_record(d))
            self.retry_op(r, mid, t)

    def feed(self, value: dict) -> None:
        if value["type"] == "message":
            self.message(value)
        else:
            self.confirmation(value)

    # -- what the outputs hold ---------------------------------------------

    def sends(self, channel: str) -> Counter:
        return Counter(
            (v["message_id"], v["recipient_id"], v["attempt"], v["forwarded"])
            for _, v in self.out if "latency_ms" not in v and v["channel"] == channel and v["status"] == channel
        )

    def receipts(self) -> list:
        return [(k, v) for k, v in self.out if "latency_ms" in v]


def latency_windows(receipts: list, open_from: int) -> dict:
    acc: dict = defaultdict(list)
    for _, v in receipts:
        if v["status"] == "delivered":
            acc[(v["channel"], v["timestamp"] // LATENCY_WINDOW_MS * LATENCY_WINDOW_MS)].append(v["latency_ms"])
    return {
        (c, w): {"channel": c, "window_start": w, "window_end": w + LATENCY_WINDOW_MS, "count": len(ls),
                 "avg_latency_ms": sum(ls) / len(ls), "max_latency_ms": float(max(ls))}
        for (c, w), ls in acc.items() if w + LATENCY_WINDOW_MS <= open_from
    }


def sessions(messages: list, open_from: int) -> dict:
    by_chat: dict = defaultdict(list)
    for m in messages:
        by_chat[m["chat_id"]].append(m)
    out = {}
    for chat, ms in by_chat.items():
        runs: list[list[dict]] = []
        for m in ms:
            if runs and m["timestamp"] - runs[-1][-1]["timestamp"] <= GAP_MS:
                runs[-1].append(m)
            else:
                runs.append([m])
        for run in runs:
            if run[-1]["timestamp"] >= open_from:
                continue  # still open
            out[(chat, run[0]["timestamp"])] = {
                "chat_id": chat, "window_start": run[0]["timestamp"], "window_end": run[-1]["timestamp"] + 1,
                "count": len(run), "count_each_sender_id": dict(Counter(m["sender_id"] for m in run)),
            }
    return out


def open_content(keyring: bytes, sealed: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = base64.b64decode(sealed)
    return AESGCM(keyring).decrypt(raw[:12], raw[12:], b"k1").decode()


def delivery_id(v: dict) -> tuple:
    return (v["message_id"], v["recipient_id"], v["status"], v["attempt"])


def test_message_delivery_example_end_to_end(broker, workdir):
    member_events = generated("chat-members", count=CHATS, keys=CHATS, seed=SEED)
    events = generated(
        "messages", count=COUNT, keys=CHATS, seed=SEED, start_ms=START_MS,
        event_interval_ms=INTERVAL_MS, invalid_fraction=0.05,
    )
    members = {e["key"]: e["value"]["members"] for e in member_events}
    presence_events = [e for e in events if e["topic"] == "user-presence"]
    traffic = [e for e in events if e["topic"] == "incoming-messages"]
    assert all(a["timestamp"] < b["timestamp"] for a, b in zip(traffic, traffic[1:]))
    presence = {e["key"]: e["value"] for e in presence_events}  # the table: the latest per user

    # A last message six hours on (and one confirmation of it) closes every window
    # and session before it and ends every retry budget.
    flush_ms = traffic[-1]["timestamp"] + 6 * 3_600_000
    chat0 = members["chat-0"]
    flush_msg = {"message_id": "m-flush", "chat_id": "chat-0", "sender_id": chat0[0], "recipient_id": chat0[1],
                 "content": "good night", "type": "message", "timestamp": flush_ms}
    flush_conf = {"type": "delivery_confirmation", "status": "delivered", "message_id": "m-flush",
                  "chat_id": "chat-0", "recipient_id": chat0[1], "timestamp": flush_ms + 1000}
    flush = [{"topic": "incoming-messages", "key": "chat-0", "value": v, "timestamp": v["timestamp"]}
             for v in (flush_msg, flush_conf)]

    model = Model(members, presence)
    for e in traffic + flush:
        model.feed(e["value"])
    before_online = len(model.out)
    # Then up to three users with stored messages come online.
    online_ms = flush_ms + 2000
    waking = sorted({r for r, _ in model.stored})[:3]
    for u in waking:
        model.online(u, online_ms)
    wake = [{"topic": "user-presence", "key": u, "timestamp": online_ms,
             "value": {"user_id": u, "online": True, "last_seen": online_ms, "timestamp": online_ms}} for u in waking]

    # What the data exercises: every path at least a few times.
    channels = Counter(v["channel"] for _, v in model.out if "latency_ms" not in v and v["attempt"] <= 1)
    kinds = Counter(why.split(" ")[0] for why in model.dead.values())
    retried = sum(1 for _, v in model.out if "latency_ms" not in v and v["attempt"] > 1 and v["status"] != "sms")
    reads = sum(1 for _, v in model.receipts() if v["status"] == "read")
    assert all(channels[c] >= 5 for c in ("websocket", "push", "stored", "sms")), channels
    assert len(model.dead) >= 6 and len(kinds) == 3, model.dead
    assert retried >= 20 and reads >= 50 and len(waking) >= 1, (retried, reads, waking)
    assert traffic[-1]["timestamp"] - START_MS < HORIZON_MS

    want_dead = dict(model.dead)
    want_ws = model.sends("websocket")
    want_push = model.sends("push")
    want_sms = model.sends("sms")
    want_stored = Counter((v["message_id"], v["recipient_id"]) for _, v in model.out
                          if "latency_ms" not in v and v["status"] == "stored")
    want_status = Counter((k,) + delivery_id(v) for k, v in model.out)
    want_receipts = Counter(
        (k, v["message_id"], v["recipient_id"], v["status"], v["channel"], v["attempt"], v["latency_ms"])
        for k, v in model.receipts()
    )
    want_latency = latency_windows(model.receipts(), flush_conf["timestamp"] // LATENCY_WINDOW_MS * LATENCY_WINDOW_MS)
    want_sessions = sessions(model.valid, flush_ms)
    plain = {m["message_id"]: m["content"] for m in model.valid}
    per_user: Counter = Counter()
    for (_, r, _, _), n in want_ws.items():
        per_user[r] += n
    ws_user = min(per_user, key=lambda u: (-per_user[u], u))
    receipt_sender = Counter(k for k, _ in model.receipts()).most_common(1)[0][0]

    # Tables and presence first: read as global tables at start, and presence
    # changes consumed by the tracking stage before any message.
    key = os.urandom(32)
    env = {
        "STROM_PIPELINE_KEYS": "k1=" + base64.b64encode(key).decode(),
    }
    push_sms = HttpRecorder()
    env["STROM_SINK_PUSH_NOTIFICATION_URL"] = push_sms.url("/push")
    env["STROM_SINK_SMS_FALLBACK_URL"] = push_sms.url("/sms")
    cf_create_topic(broker.bootstrap, "incoming-messages", partitions=1)
    cf_create_topic(broker.bootstrap, "user-presence", partitions=1)
    warm_members = ["warm-a", "warm-b"]
    warm_presence = {"topic": "user-presence", "key": "warm-b", "timestamp": WARM_MS,
                     "value": {"user_id": "warm-b", "online": True, "last_seen": WARM_MS, "timestamp": WARM_MS}}
    produce_events(broker.bootstrap, member_events + [
        {"topic": "chat-members", "key": WARM_CHAT, "timestamp": WARM_MS,
         "value": {"chat_id": WARM_CHAT, "members": warm_members}},
    ])
    produce_events(broker.bootstrap, presence_events + [warm_presence])

    p = PipelineProcess(workdir, PIPELINE, broker.bootstrap, env)
    p.start()
    readers = {t: TopicReader(broker.bootstrap, t) for t in (
        "delivery-status", "read-receipts", "stored-messages", "delivery-latency",
        "conversation-sessions", f"{NAME}-dlq",
    )}
    listeners = {
        "online": WsListener(p.ws_url("/online_users")),
        "user": WsListener(p.ws_url(f"/online_users?key={ws_user}")),
        "receipts": WsListener(p.ws_url(f"/receipts?key={receipt_sender}")),
        "warm-receipts": WsListener(p.ws_url("/receipts?key=warm-a")),
        "status": WsListener(p.ws_url("/delivery-status")),
    }
    page = Browser()
    try:
        tracked = lambda: p.metric(  # noqa: E731
            "strom_pipeline_operation_records_total", pipeline=NAME, step="delivery-tracking",
            operation="track_delivery_status",
        )
        p.wait(lambda: tracked() == len(presence_events) + 1, "every presence change through delivery-tracking")
        page.open(p.http + "/")
        page.wait_until("document.getElementById('status').textContent.startsWith('open')", "the page's sockets open")

        # The WebSocket outputs tail their topics from where they are when they
        # start: warm up until each has passed a message of the warm-up chat on.
        warm = []

        def warmed():
            heard = [listeners[n].messages for n in ("online", "warm-receipts", "status")]
            if all(any(m.get("chat_id") == WARM_CHAT for m in msgs) for msgs in heard):
                return True
            i = len(warm)
            t = WARM_MS + 10 * i
            mid = f"warm-{i}"
            warm.append(mid)
            produce_events(broker.bootstrap, [
                {"topic": "incoming-messages", "key": WARM_CHAT, "timestamp": t,
                 "value": {"type": "message", "message_id": mid, "chat_id": WARM_CHAT, "sender_id": "warm-a",
                           "recipient_id": "warm-b", "content": "warming up", "timestamp": t}},
                {"topic": "incoming-messages", "key": WARM_CHAT, "timestamp": t + 1,
                 "value": {"type": "delivery_confirmation", "status": "delivered", "message_id": mid,
                           "chat_id": WARM_CHAT, "recipient_id": "warm-b", "timestamp": t + 1}},
            ])
            return False

        p.wait(warmed, "a warm-up message on /online_users, /receipts and /delivery-status")

        def real(pairs):
            return [(k, v) for k, v, _ in pairs if isinstance(v, dict) and v.get("chat_id") != WARM_CHAT]

        produce_events(broker.bootstrap, traffic + flush)
        # The flush's confirmation is the last record: once its receipt is out, every
        # earlier record has been handled (one task, in order).
        last = ("m-flush", flush_conf["recipient_id"], "delivered")

        def handled():
            got = real(readers["delivery-status"].read())
            return got if any(delivery_id(v)[:3] == last for _, v in got) else None

        got = p.wait(handled, f"the receipt of {last}", timeout=240)
        want_before = Counter((k,) + delivery_id(v) for k, v in model.out[:before_online])
        assert Counter((k,) + delivery_id(v) for k, v in got) == want_before
        produce_events(broker.bootstrap, wake)

        # delivery-status: every state change of every delivery, exactly once.
        def statuses():
            got = real(readers["delivery-status"].read())
            return got if len(got) >= len(model.out) else None

        got = p.wait(statuses, f"{len(model.out)} records on delivery-status", timeout=120)
        assert Counter((k,) + delivery_id(v) for k, v in got) == want_status

        # The same, live, on /delivery-status (the page's source).
        def live_status():
            got = [v for v in listeners["status"].messages if v.get("chat_id") != WARM_CHAT]
            return got if len(got) >= len(model.out) else None

        live = p.wait(live_status, f"{len(model.out)} messages on /delivery-status")
        assert Counter(delivery_id(v) for v in live) == Counter(delivery_id(v) for _, v in model.out)

        # Dead letters: each invalid message once, with its reason.
        dead = {}
        for _, v, h in readers[f"{NAME}-dlq"].read():
            dead[(v.get("type"), v.get("message_id"))] = h.get("strom.error")
        assert dead == want_dead

        # Receipts to senders, with latencies, on Kafka and on the sender's socket.
        def receipt_tuple(k, v):
            return (k, v["message_id"], v["recipient_id"], v["status"], v["channel"], v["attempt"], v["latency_ms"])

        got_receipts = Counter(receipt_tuple(k, v) for k, v in real(readers["read-receipts"].read()))
        assert got_receipts == want_receipts
        mine = Counter(r for r in want_receipts.elements() if r[0] == receipt_sender)
        p.wait(lambda: len(listeners["receipts"].messages) >= sum(mine.values()),
               f"{sum(mine.values())} receipts on /receipts?key={receipt_sender}")
        assert Counter(receipt_tuple(receipt_sender, v) for v in listeners["receipts"].messages) == mine

        # Stored for later.
        got_stored = Counter((v["message_id"], v["recipient_id"]) for _, v in real(readers["stored-messages"].read()))
        assert got_stored == want_stored

        # WebSocket deliveries (sealed content), all of them and one user's.
        def sends_of(msgs):
            return Counter((v["message_id"], v["recipient_id"], v["attempt"], v.get("forwarded", False))
                           for v in msgs if v.get("chat_id") != WARM_CHAT)

        p.wait(lambda: sum(sends_of(listeners["online"].messages).values()) >= sum(want_ws.values()),
               f"{sum(want_ws.values())} WebSocket deliveries")
        online_msgs = [v for v in listeners["online"].messages if v.get("chat_id") != WARM_CHAT]
        assert sends_of(online_msgs) == want_ws
        for v in online_msgs:
            assert v["content"] != plain[v["message_id"]] and v["encryption_key_id"] == "k1", v
            assert open_content(key, v["content"]) == plain[v["message_id"]], v
            assert v["recipient_server"] == f"server-{fnv1a(v['recipient_id']) % 16}", v
            assert v["status"] == "websocket" and "_route" not in v, v
        want_user = Counter({s: n for s, n in want_ws.items() if s[1] == ws_user})
        p.wait(lambda: sum(sends_of(listeners["user"].messages).values()) >= sum(want_user.values()),
               f"{ws_user}'s WebSocket deliveries")
        assert sends_of(listeners["user"].messages) == want_user

        # Push and SMS webhooks.
        def hooks(path):
            return sends_of(r["body"] for r in push_sms.received(path))

        p.wait(lambda: sum(hooks("/push").values()) >= sum(want_push.values())
               and sum(hooks("/sms").values()) >= sum(want_sms.values()), "every push and SMS")
        assert hooks("/push") == want_push
        assert hooks("/sms") == want_sms
        for r in push_sms.received():
            assert r["headers"].get("idempotency-key", "").startswith(f"{NAME}-sink-"), r["headers"]
            assert open_content(key, r["body"]["content"]) == plain.get(r["body"]["message_id"], "warming up")

        # Latency per channel and closed 5-minute window.
        def latency():
            got = {(v["channel"], v["window_start"]): v for _, v, _ in readers["delivery-latency"].read()
                   if v["window_start"] >= START_MS - LATENCY_WINDOW_MS}
            return got if len(got) >= len(want_latency) else None

        got_latency = p.wait(latency, f"{len(want_latency)} latency windows")
        assert set(got_latency) == set(want_latency)
        for k, want in want_latency.items():
            v = got_latency[k]
            assert {f: v[f] for f in ("channel", "window_start", "window_end", "count")} == \
                {f: want[f] for f in ("channel", "window_start", "window_end", "count")}, (v, want)
            assert v["avg_latency_ms"] == pytest.approx(want["avg_latency_ms"]), (v, want)
            assert v["max_latency_ms"] == want["max_latency_ms"], (v, want)

        # Conversations: closed sessions per chat, exactly once.
        def conversations():
            got = [v for k, v in real(readers["conversation-sessions"].read())]
            return got if len(got) >= len(want_sessions) else None

        got_sessions = p.wait(conversations, f"{len(want_sessions)} conversation sessions")
        keys = [(v["chat_id"], v["window_start"]) for v in got_sessions]
        assert len(keys) == len(set(keys)), "a session appeared twice"
        assert {k: v for k, v in zip(keys, got_sessions)} == want_sessions

        # The page: the newest messages with each recipient's state, the counts of
        # every state, the newest latency window, the newest conversations.
        final: dict = {}
        for _, v in model.out:
            final.setdefault(v["message_id"], {})[v["recipient_id"]] = (v["status"], v["attempt"])
        newest = sorted(model.valid, key=lambda m: (-m["timestamp"], m["message_id"]))[:ROWS]
        want_rows = [
            [m["message_id"], [[r, *map(str, final[m["message_id"]][r])] for r in sorted(final[m["message_id"]])]]
            for m in newest
        ]
        page.wait_until(
            """Array.from(document.querySelectorAll('#messages tbody tr'), tr => [tr.dataset.message,
                 Array.from(tr.querySelectorAll('[data-recipient]'), s => [s.dataset.recipient, s.dataset.status, s.dataset.attempt])])""",
            f"the newest {ROWS} messages' delivery states",
            check=lambda rows: rows == want_rows,
        )
        counts = Counter(s for by in final.values() for s, _ in by.values())
        # And the warm-up messages the page got (from when its socket was served).
        counts.update(page.eval("""[...messages.values()].filter(m => m.chat === 'chat-warm')
                                     .flatMap(m => [...m.recipients.values()].map(r => r.status))"""))
        want_counts = {s: str(counts[s]) for s in ("websocket", "push", "stored", "sms", "delivered", "read", "expired")}
        page.wait_until(
            "Object.fromEntries(Array.from(document.querySelectorAll('[data-count]'), s => [s.dataset.count, s.dataset.value]))",
            f"the counts of every state {want_counts}",
            check=lambda c: c == want_counts,
        )
        newest_by_channel: dict = {}
        for c, w in want_latency:
            newest_by_channel[c] = max(w, newest_by_channel.get(c, w))
        want_panel = [[c, str(want_latency[(c, w)]["window_start"]), str(want_latency[(c, w)]["count"])]
                      for c, w in sorted(newest_by_channel.items())]
        page.wait_until(
            """Array.from(document.querySelectorAll('#latency tbody tr'), tr => ['channel', 'window_start', 'count']
                 .map(f => tr.querySelector(`[data-field="${f}"]`).dataset.value.replace(/^"|"$/g, '')))""",
            f"each channel's newest latency window: {want_panel}",
            check=lambda rows: rows == want_panel,
        )
        want_conv = [[v["chat_id"], str(v["count"])] for v in sorted(
            want_sessions.values(), key=lambda v: (-v["window_end"], v["chat_id"]))[:10]]
        page.wait_until(
            """Array.from(document.querySelectorAll('#sessions tbody tr'), tr =>
                 [tr.querySelector('[data-field="chat_id"]').innerText, tr.querySelector('[data-field="count"]').innerText])""",
            f"the newest conversations {want_conv}",
            check=lambda rows: rows == want_conv,
        )
    finally:
        page.close()
        for listener in listeners.values():
            listener.close()
        for reader in readers.values():
            reader.close()
        push_sms.close()
        p.close()
