#!/usr/bin/env python3
"""Nexmark: strom-streams against Apache Flink on the same queries, the same number of
events and the same machine, in one run.

    python3 bench/nexmark.py [--events 3000000] [--queries q0,q1,q2,tumble_count]
                             [--parallelism 1,2] [--repeat 3] [--no-flink] [--no-build]

Builds the release binary (`cargo build --release -p strom`; $CARGO_TARGET_DIR is
respected, $STROM_BIN overrides the binary), then for each repeat, query and
parallelism p runs, one after the other so that both see the same machine:

- **strom**: `strom bench nexmark --query Q --events N --threads p --json` — the
  in-process mode: strom-nexmark's generator (the Flink script's bid formulas for the
  bid queries) → the query on strom-streams' in-process runner → a blackhole; events/s
  from the first event to the last commit; peak RSS of the process (VmHWM);
- **Flink**: the shared peer script `nexmark_flink.py --query Q --parallelism p --events
  N` (PyFlink's local mini-cluster, datagen → SQL → blackhole, Java 17) from
  `../shared/bench-peers/flink/` (or $FLINK_PEER_DIR), in a venv with
  apache-flink 2.3.0 (bench/.venv/flink, created on first use: about a minute and
  850 MB; or --flink-venv); events/s over the job's net runtime (JVM start and planning
  excluded); peak RSS of its JVM.

Each figure is the best of --repeat runs (the highest events/s, with that run's
memory). Queries default to those both sides have. Writes bench/nexmark-results.json
(every run) and bench/nexmark-results.md (the table, with the ratios and the aims:
≥ 3× Flink's events/s at ≤ 1/10 of its memory; Feldera's published per-core rates,
q0 436k, q5 412k, q7 196k events/s). Needs only Python 3's standard library.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
STROM = Path(os.environ.get("STROM_BIN", TARGET / "release" / "strom"))
FLINK_DIR = Path(os.environ.get("FLINK_PEER_DIR", ROOT.parent / "shared" / "bench-peers" / "flink"))
FLINK_VENV = ROOT / "bench" / ".venv" / "flink"
FLINK_QUERIES = ["q0", "q1", "q2", "q5", "q7", "q7w", "tumble_count"]
# Feldera's published Nexmark rates per core (16 cores: q0 6.97M, q5 6.59M, q7 3.14M).
FELDERA_PER_CORE = {"q0": 436_000, "q5": 412_000, "q7": 196_000}
RUN_TIMEOUT_S = 420


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def strom_queries():
    out = subprocess.run([str(STROM), "bench", "nexmark", "--query", "list"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ensure_flink_venv(venv: Path):
    python = venv / "bin" / "python"
    if python.exists():
        return python
    log(f"creating {venv} with apache-flink 2.3.0 (about a minute, 850 MB)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "apache-flink==2.3.0"], check=True)
    return python


def run_strom(query, events, threads, extra):
    cmd = [str(STROM), "bench", "nexmark", "--query", query, "--events", str(events),
           "--threads", str(threads), "--json", *extra]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"failed": "timeout", "command": " ".join(cmd)}
    if p.returncode != 0:
        return {"failed": p.stderr.strip()[-500:], "command": " ".join(cmd)}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return {
        "events_per_s": r["events_per_second"],
        "seconds": r["seconds"],
        "peak_rss_mb": r["peak_rss_mb"],
        "outputs": r["outputs"],
        "latency_p99_ms": (r.get("latency_ms") or {}).get("p99"),
        "command": " ".join(cmd),
        "raw": r,
    }


def run_flink(python, query, events, parallelism, workdir):
    script = FLINK_DIR / "nexmark_flink.py"
    cmd = [str(python), str(script), "--query", query, "--parallelism", str(parallelism),
           "--events", str(events)]
    try:
        # The script's directory is read-only here: run it from a scratch directory.
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=workdir)
    except subprocess.TimeoutExpired:
        return {"failed": "timeout", "command": " ".join(cmd)}
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"failed": (p.stderr.strip() or p.stdout.strip())[-500:], "command": " ".join(cmd)}
    r = json.loads(lines[-1])
    return {
        "events_per_s": r["events_per_s_net"],
        "seconds": r["job_net_runtime_s"],
        "peak_rss_mb": r["jvm_peak_rss_mb"],
        "events_per_s_wall": r["events_per_s_wall"],
        "command": " ".join(cmd),
        "raw": r,
    }


def best(runs):
    ok = [r for r in runs if "events_per_s" in r]
    return max(ok, key=lambda r: r["events_per_s"]) if ok else (runs[-1] if runs else None)


def fmt_rate(x):
    return f"{x / 1000:,.0f}k" if x is not None else "–"


def table(results, args):
    rows = [
        "| query | p | strom events/s | Flink events/s | strom ÷ Flink | strom peak RSS | Flink peak RSS | Flink ÷ strom memory | aim ≥ 3× at ≤ 1/10 memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in sorted(results, key=lambda k: (args.queries.index(k[0]), k[1])):
        q, p = key
        s, f = best(results[key]["strom"]), best(results[key]["flink"])
        srate = s.get("events_per_s") if s else None
        frate = f.get("events_per_s") if f else None
        smem = s.get("peak_rss_mb") if s else None
        fmem = f.get("peak_rss_mb") if f else None
        ratio = srate / frate if srate and frate else None
        mem_ratio = fmem / smem if smem and fmem else None
        met = "–"
        if ratio is not None and mem_ratio is not None:
            met = "yes" if ratio >= 3 and mem_ratio >= 10 else (
                "no: " + ", ".join(x for x in [
                    f"{ratio:.1f}× < 3×" if ratio < 3 else "",
                    f"memory 1/{mem_ratio:.0f} > 1/10" if mem_ratio < 10 else ""] if x))
        rows.append(
            f"| {q} | {p} | {fmt_rate(srate)} | {fmt_rate(frate)} | "
            f"{f'{ratio:.2f}×' if ratio else '–'} | {f'{smem:.0f} MB' if smem else '–'} | "
            f"{f'{fmem:,.0f} MB' if fmem else '–'} | {f'{mem_ratio:.0f}×' if mem_ratio else '–'} | {met} |")
    feldera = []
    for q, per_core in FELDERA_PER_CORE.items():
        if (q, 1) in results:
            s = best(results[(q, 1)]["strom"])
            if s and "events_per_s" in s:
                feldera.append(f"| {q} | {fmt_rate(s['events_per_s'])} | {fmt_rate(per_core)} | "
                               f"{s['events_per_s'] / per_core:.2f}× |")
    out = "\n".join(rows)
    if feldera:
        out += ("\n\n| query | strom, 1 thread | Feldera per core (published) | strom ÷ Feldera |\n"
                "| --- | --- | --- | --- |\n" + "\n".join(feldera))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--queries", help="comma-separated (default: those both sides run)")
    parser.add_argument("--parallelism", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--no-flink", action="store_true", help="strom only")
    parser.add_argument("--no-build", action="store_true", help="use the binary as it is")
    parser.add_argument("--flink-venv", type=Path, default=FLINK_VENV)
    parser.add_argument("--strom-arg", action="append", default=[],
                        help="extra flag for `strom bench nexmark` (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "nexmark-results")
    args = parser.parse_args()

    if not args.no_build:
        log("building the release binary")
        subprocess.run(["cargo", "build", "--release", "-p", "strom"], cwd=ROOT, check=True)
    ours = strom_queries()
    if args.queries:
        args.queries = args.queries.split(",")
    else:
        args.queries = [q for q in ours if args.no_flink or q in FLINK_QUERIES]
    parallelism = [int(p) for p in args.parallelism.split(",")]
    python = None if args.no_flink else ensure_flink_venv(args.flink_venv)

    results = {(q, p): {"strom": [], "flink": []} for q in args.queries for p in parallelism}
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as workdir:
        for i in range(args.repeat):
            for q in args.queries:
                for p in parallelism:
                    if q in ours:
                        r = run_strom(q, args.events, p, args.strom_arg)
                        results[(q, p)]["strom"].append(r)
                        log(f"[{i + 1}/{args.repeat}] strom {q} p={p}: "
                            f"{fmt_rate(r.get('events_per_s'))} events/s, {r.get('peak_rss_mb', 0):.0f} MB"
                            + (f" FAILED {r['failed']}" if "failed" in r else ""))
                    if python and q in FLINK_QUERIES:
                        r = run_flink(python, q, args.events, p, workdir)
                        results[(q, p)]["flink"].append(r)
                        log(f"[{i + 1}/{args.repeat}] Flink {q} p={p}: "
                            f"{fmt_rate(r.get('events_per_s'))} events/s, {r.get('peak_rss_mb', 0):,.0f} MB"
                            + (f" FAILED {r['failed']}" if "failed" in r else ""))
    summary = table(results, args)
    machine = {
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "minutes": round((time.time() - started) / 60, 1),
    }
    command = " ".join(["python3", "bench/nexmark.py", *sys.argv[1:]])
    args.out.with_suffix(".json").write_text(json.dumps({
        "command": command,
        "events": args.events,
        "repeat": args.repeat,
        "machine": machine,
        "runs": {f"{q} p={p}": v for (q, p), v in results.items()},
    }, indent=1) + "\n")
    md = (f"Nexmark, strom-streams (in-process) against Apache Flink 2.3 (PyFlink mini-cluster), "
          f"{args.events:,} events per run, best of {args.repeat}, {machine['cores']} cores, "
          f"load average {load_before[0]:.1f} before and {machine['load_average_after'][0]:.1f} after "
          f"({machine['minutes']} minutes).\n`{command}`\n\n{summary}\n")
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
