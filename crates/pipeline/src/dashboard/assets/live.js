/*
 * live.js — live views of a strom pipeline's WebSocket endpoints.
 *
 * Served by the pipeline's HTTP server at /live.js; no dependencies, no build step.
 * `<script src="/live.js"></script>` defines `window.strom`:
 *
 *   strom.live(path, {key, limit, recordKey, render, renderEveryMs})
 *       Subscribe to endpoint `path` (reconnecting with backoff), keep the latest
 *       result per row key (at most `limit`, default 200, the least recently updated
 *       dropped first) and call render(view) at most every `renderEveryMs` (100) after
 *       a change. `key`: a list of value fields, or a function of the message
 *       {key, value}; default: the record key, plus "@" + window_start when the value
 *       has one. `recordKey`: only that record key's results (the endpoint's ?key=).
 *       view.rows() — [{id, key, value, seq, at_ms}] newest first; view.received,
 *       view.state ("connecting" | "open" | "closed"), view.connects; view.close().
 *   strom.subscribe(path, {onMessage, onState, recordKey})   the connection alone
 *   strom.latest({key, limit})                               the table alone
 *   strom.table(element, rows, {columns, caption})           render rows as a <table>
 *   strom.pipeline(), strom.summary()                        /api/endpoints, /api/summary
 *   strom.format(value, field)                               a value for reading
 *       (numbers rounded to 3 decimals; *_start, *_end, *_at, *_ms and timestamp
 *       fields holding epoch milliseconds as local times)
 *
 * Messages are the endpoints' envelopes: {"key": "<record key>", "value": {...}}.
 */
(function (global) {
  "use strict";

  const RECONNECT_MS_MIN = 250;
  const RECONNECT_MS_MAX = 5000;
  const ROWS_DEFAULT = 200;
  const RENDER_EVERY_MS = 100;

  async function getJson(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) {
      throw new Error(`${path}: HTTP ${response.status}`);
    }
    return response.json();
  }

  /** The ws:// (or wss://) URL of endpoint `path` on this page's server. */
  function wsUrl(path, params) {
    const scheme = global.location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams(params).toString();
    return `${scheme}//${global.location.host}${path}${query ? "?" + query : ""}`;
  }

  /** A row key function from a `key` option (see the header). */
  function rowKey(spec) {
    if (typeof spec === "function") {
      return spec;
    }
    if (Array.isArray(spec) && spec.length > 0) {
      return (msg) => JSON.stringify(spec.map((f) => field(msg.value, f)));
    }
    return (msg) => {
      const start = msg.value && msg.value.window_start;
      return start === undefined || start === null ? String(msg.key) : `${msg.key}@${start}`;
    };
  }

  /** A (dotted) field of a value, or undefined. */
  function field(value, path) {
    let v = value;
    for (const part of String(path).split(".")) {
      if (v === null || typeof v !== "object") {
        return undefined;
      }
      v = v[part];
    }
    return v;
  }

  /**
   * One endpoint's connection: reopened after it drops, waiting 250 ms, doubling up to
   * 5 s, and back to 250 ms once a connection opens.
   */
  class Subscription {
    constructor(path, options = {}) {
      this.path = path;
      this.options = options;
      this.received = 0;
      this.connects = 0;
      this.state = "connecting";
      this.closed = false;
      this.backoffMs = RECONNECT_MS_MIN;
      this.timer = null;
      this.open();
    }

    open() {
      const params = { envelope: "true" };
      if (this.options.recordKey !== undefined && this.options.recordKey !== null) {
        params.key = this.options.recordKey;
      }
      this.setState("connecting");
      const ws = new WebSocket(wsUrl(this.path, params));
      this.ws = ws;
      ws.onopen = () => {
        this.connects += 1;
        this.backoffMs = RECONNECT_MS_MIN;
        this.setState("open");
      };
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (e) {
          console.warn(`strom: ${this.path}: a message that is not JSON`, e);
          return;
        }
        this.received += 1;
        if (this.options.onMessage) {
          this.options.onMessage(msg, this);
        }
      };
      ws.onclose = () => {
        if (this.ws !== ws) {
          return;
        }
        this.setState("closed");
        if (!this.closed) {
          this.timer = setTimeout(() => this.open(), this.backoffMs);
          this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MS_MAX);
        }
      };
      // An error is followed by a close, which reconnects.
      ws.onerror = () => {};
    }

    setState(state) {
      this.state = state;
      if (this.options.onState) {
        this.options.onState(state, this);
      }
    }

    /** Closes for good (no reconnection). */
    close() {
      this.closed = true;
      clearTimeout(this.timer);
      if (this.ws) {
        this.ws.close();
      }
    }
  }

  /**
   * The latest message per row key, bounded: a Map in update order (an update moves
   * its row to the end), so the first entry is the least recently updated.
   */
  class Latest {
    constructor(options = {}) {
      this.keyOf = rowKey(options.key);
      this.limit = Math.max(1, options.limit || ROWS_DEFAULT);
      this.map = new Map();
      this.seq = 0;
    }

    /** Records a message; returns its row. */
    put(msg) {
      const id = this.keyOf(msg);
      this.seq += 1;
      const row = { id, key: msg.key, value: msg.value, seq: this.seq, at_ms: Date.now() };
      this.map.delete(id);
      this.map.set(id, row);
      while (this.map.size > this.limit) {
        this.map.delete(this.map.keys().next().value);
      }
      return row;
    }

    get(id) {
      return this.map.get(id);
    }

    get size() {
      return this.map.size;
    }

    /** Rows, the most recently updated first. */
    rows() {
      return Array.from(this.map.values()).reverse();
    }

    clear() {
      this.map.clear();
    }
  }

  /** A subscription feeding a Latest table, rendering after changes (see the header). */
  function live(path, options = {}) {
    const table = new Latest(options);
    const everyMs = options.renderEveryMs === undefined ? RENDER_EVERY_MS : options.renderEveryMs;
    let pending = null;
    let lastMs = 0;
    const view = {
      path,
      table,
      rows: () => table.rows(),
      get received() {
        return subscription.received;
      },
      get state() {
        return subscription.state;
      },
      get connects() {
        return subscription.connects;
      },
      close: () => subscription.close(),
    };
    const render = () => {
      pending = null;
      lastMs = Date.now();
      if (options.render) {
        options.render(view);
      }
    };
    const schedule = () => {
      if (pending === null) {
        pending = setTimeout(render, Math.max(0, lastMs + everyMs - Date.now()));
      }
    };
    const subscription = new Subscription(path, {
      recordKey: options.recordKey,
      onMessage: (msg) => {
        table.put(msg);
        schedule();
      },
      onState: schedule,
    });
    view.subscription = subscription;
    return view;
  }

  function isTimeField(name) {
    return /(^|_)(start|end)$|^timestamp$|_at$|_ms$/.test(name);
  }

  /** Milliseconds since the epoch as local "YYYY-MM-DD HH:MM:SS[.mmm]". */
  function localTime(ms) {
    const d = new Date(ms);
    const two = (n) => String(n).padStart(2, "0");
    const date = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
    const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
    const millis = d.getMilliseconds() ? "." + String(d.getMilliseconds()).padStart(3, "0") : "";
    return `${date} ${time}${millis}`;
  }

  /** A value as text for reading; see the header. */
  function format(value, name = "") {
    if (value === null || value === undefined) {
      return "";
    }
    if (typeof value === "number") {
      if (isTimeField(name) && Number.isInteger(value) && value > 1e11) {
        return localTime(value);
      }
      return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
    }
    if (typeof value === "object") {
      return JSON.stringify(value);
    }
    return String(value);
  }

  /**
   * The value fields of rows (the columns of a generic table): the window first, then
   * fields holding text (group fields, names, states), then the rest (aggregates),
   * each group in first-seen order.
   */
  function columnsOf(rows) {
    const seen = new Map();
    for (const row of rows) {
      if (row.value && typeof row.value === "object" && !Array.isArray(row.value)) {
        for (const [k, v] of Object.entries(row.value)) {
          if (!seen.has(k)) {
            const rank = k === "window_start" ? 0 : k === "window_end" ? 1 : typeof v === "string" ? 2 : 3;
            seen.set(k, rank);
          }
        }
      } else if (!seen.has("value")) {
        seen.set("value", 3);
      }
    }
    // Array.prototype.sort is stable: first-seen order holds within a rank.
    return Array.from(seen.keys()).sort((a, b) => seen.get(a) - seen.get(b));
  }

  /**
   * Renders rows into `element` as a table: `columns` are field names (dotted paths
   * allowed) or {field, label, format(value, row)}; default: every field seen. Text
   * only: values never become HTML.
   */
  function table(element, rows, options = {}) {
    const columns = (options.columns || columnsOf(rows)).map((c) =>
      typeof c === "string" ? { field: c, label: c } : { label: c.field, ...c },
    );
    const tableEl = document.createElement("table");
    if (options.caption) {
      tableEl.createCaption().textContent = options.caption;
    }
    const head = tableEl.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.textContent = c.label;
      head.appendChild(th);
    }
    const body = tableEl.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      tr.dataset.id = row.id;
      for (const c of columns) {
        const td = tr.insertCell();
        const v = c.field === "value" && !(row.value && typeof row.value === "object")
          ? row.value
          : field(row.value, c.field);
        td.dataset.field = c.field;
        td.dataset.value = v === undefined ? "" : JSON.stringify(v);
        td.textContent = c.format ? c.format(v, row) : format(v, c.field);
        if (typeof v === "number") {
          td.className = "num";
        }
      }
    }
    element.replaceChildren(tableEl);
    return tableEl;
  }

  global.strom = {
    live,
    subscribe: (path, options) => new Subscription(path, options),
    latest: (options) => new Latest(options),
    table,
    format,
    field,
    wsUrl,
    pipeline: () => getJson("/api/endpoints"),
    summary: () => getJson("/api/summary"),
  };
})(window);
