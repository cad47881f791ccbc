#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the figures of benches/scale.py, benches/regimes.py and
scripts/bench-check.sh, prints its tables. Blocks between `<!-- keep:NAME -->` and `<!-- /keep:NAME -->` in the existing file
(hand-written analysis, the recorded fault campaign) are carried over unchanged, unless a fresh
fault-campaign output is given."""

import argparse
import datetime
import json
import os
import re

TARGET_FLOOR, TARGET_BASELINE, TARGET_NOOP, TARGET_RSS_MB, TARGET_CHECK_MS = 1.5, 50, 10, 30, 10
VERBS = ("list", "get", "patch", "create", "update")
HOW_TO_CAMPAIGN = """`tests/fault_campaign.rs` (its module docs list the invariants). CI runs 20 rounds; the long form:

    FAULT_ROUNDS=1000 FAULT_SEED=20261123 cargo test --test fault_campaign -- --nocapture
    # against a release binary copied aside: add FAULT_BIN=path/to/namespace-scheduler
"""


def mib(kb):
    return kb / 1024.0


def kept_blocks(path):
    if not os.path.exists(path):
        return {}
    text = open(path, encoding="utf-8").read()
    return {m.group(1): m.group(0) for m in re.finditer(r"<!-- keep:(\S+) -->.*?<!-- /keep:\1 -->", text, re.S)}


def block(name, kept, default):
    return kept.get(name) or f"<!-- keep:{name} -->\n{default.strip()}\n<!-- /keep:{name} -->"


def verbs(v):
    return " ".join(f"{k} {v[k]}" for k in VERBS if v.get(k)) + "".join(
        f" {k} {n}" for k, n in sorted(v.items()) if k not in VERBS
    )


def check_rows(text):
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s*$", line)
        if m:
            rows[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows


def side_cpu(p, key):
    v = p.get(key)
    return "–" if v is None else f"{v*1000:.0f}"


def flight(p):
    if p.get("mean_response_ms") is None:
        return "– | –"
    return f"{p['mean_response_ms']:.1f} | {p['in_flight']:.1f}"


def scale_tables(s):
    out = []
    lat, conc = s["latency_ms"], s["concurrency"]
    out.append(f"Injected latency {lat} ms per API request; `SCALE_CONCURRENCY={conc}`; audit to DynamoDB Local.\n")
    out.append("| namespaces | workloads | run | wall ms | API requests (by verb) | writes | floor ms | × floor "
               "| peak RSS MiB | CPU ms | exit | left off target | stand-in CPU ms | DynamoDB Local CPU ms "
               "| mean response ms | mean in flight |")
    out.append("|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in s["ours"]:
        for phase in ("down", "up", "noop"):
            p = r.get(phase)
            if not p:
                continue
            out.append(
                f"| {r['namespaces']} | {r['workloads']} | {phase} | {p['wall_s']*1000:.0f} | {p['requests']} "
                f"({verbs(p['by_verb'])}) | {p['writes']} | {p['floor_s']*1000:.0f} | "
                f"{p['vs_floor']:.2f} | {mib(p['maxrss_kb']):.1f} | {p['cpu_s']*1000:.0f} | {p['exit']} "
                f"| {p['not_at_target']} | {side_cpu(p, 'standin_cpu_s')} | {side_cpu(p, 'dynamo_cpu_s')} "
                f"| {flight(p)} |"
                if p["vs_floor"] is not None
                else f"| {r['namespaces']} | {r['workloads']} | {phase} | {p['wall_s']*1000:.0f} | {p['requests']} "
                f"({verbs(p['by_verb'])}) | {p['writes']} | – | – | {mib(p['maxrss_kb']):.1f} | "
                f"{p['cpu_s']*1000:.0f} | {p['exit']} | {p['not_at_target']} | {side_cpu(p, 'standin_cpu_s')} "
                f"| {side_cpu(p, 'dynamo_cpu_s')} | {flight(p)} |"
            )
    out.append("")
    out.append("Per namespace (down / up):\n")
    out.append("| namespaces | ms per namespace | requests per namespace | peak RSS MiB | RSS growth KiB per namespace |")
    out.append("|---:|---|---|---:|---|")
    first = s["ours"][0] if s["ours"] else None
    for r in s["ours"]:
        n = r["namespaces"]
        d, u = r["down"], r["up"]
        growth = "–"
        if first and r is not first:
            dn = n - first["namespaces"]
            growth = " / ".join(f"{(r[p]['maxrss_kb'] - first[p]['maxrss_kb']) / dn:.1f}" for p in ("down", "up"))
        out.append(f"| {n} | {d['wall_s']*1000/n:.2f} / {u['wall_s']*1000/n:.2f} | "
                   f"{d['requests']/n:.2f} / {u['requests']/n:.2f} | "
                   f"{mib(max(d['maxrss_kb'], u['maxrss_kb'])):.1f} | {growth} |")
    return "\n".join(out)


def before_table(s):
    """The largest size once more with the binary of BEFORE_REV (lists paged from etcd)."""
    b = s.get("before")
    now = {r["namespaces"]: r for r in s["ours"]}.get(b["namespaces"]) if b else None
    if not b or not now:
        return ""
    out = [f"The same runs at {b['namespaces']} namespaces with the binary of the commit before the lists "
           "moved to the watch cache (`BEFORE_REV`), same stand-in fixture:\n",
           "| run | binary | wall ms | API requests (by verb) | peak RSS MiB | CPU ms |", "|---|---|---:|---|---:|---:|"]
    for phase in ("down", "up", "noop"):
        for label, r in (("before", b), ("now", now)):
            p = r[phase]
            out.append(f"| {phase} | {label} | {p['wall_s']*1000:.0f} | {p['requests']} ({verbs(p['by_verb'])}) "
                       f"| {mib(p['maxrss_kb']):.1f} | {p['cpu_s']*1000:.0f} |")
    return "\n".join(out) + "\n"


def calls(p):
    c = (p or {}).get("dynamo_calls")
    return None if c is None else (sum(c.values()), c)


def dynamo_table(s):
    """DynamoDB calls per run, counted by benches/dynamo_count.py in front of DynamoDB Local, for
    the binary before the write-ahead audit (`AUDIT_BEFORE_REV`) and now."""
    before = {r["namespaces"]: r for r in s.get("audit_before", [])}
    now = {r["namespaces"]: r for r in s["ours"]}
    sizes = sorted(n for n in now if n in before) or sorted(now)
    out = ["| namespaces | run | binary | DynamoDB calls (by operation) | calls per run | per namespace changed |",
           "|---:|---|---|---|---:|---:|"]
    for n in sizes:
        for phase in ("down", "up", "noop"):
            for label, r in (("before", before.get(n)), ("now", now.get(n))):
                c = calls((r or {}).get(phase))
                if c is None:
                    continue
                total, by_op = c
                changed = (r[phase].get("summary_changed") or n) if phase != "noop" else 0
                per = f"{total / changed:.3f}" if changed else "–"
                ops = " ".join(f"{k} {v}" for k, v in sorted(by_op.items())) or "none"
                out.append(f"| {n} | {phase} | {label} | {ops} | {total} | {per} |")
    return "\n".join(out)


FLEET_RUNS = (
    ("noop", "no-op `run` (nothing to change, no request)"),
    ("requests", "`run` granting one ActivationRequest per namespace"),
    ("noop_after_requests", "the same `run` again (requests answered, windows open)"),
    ("up", "`up` of every namespace, one `up` per cost center (calls summed)"),
)


def fleet_table(f):
    """DynamoDB calls per run with the fleet's windows table (benches/fleet.py), the binary of
    `FLEET_BEFORE_REV` beside the one measured."""
    if not f:
        return "Not measured (run `scripts/bench.sh`)."
    out = [f"{f['namespaces']} namespaces in {f['cost_centers']} cost centers.", "",
           "| run | binary | DynamoDB calls (by operation) | calls per run |", "|---|---|---|---:|"]
    for key, what in FLEET_RUNS:
        for r in f["runs"]:
            c = r.get(key)
            if c is None:
                continue
            ops = " ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"
            out.append(f"| {what} | {r['binary']} | {ops} | {sum(c.values())} |")
    return "\n".join(out)


def phase_table(s):
    out = ["| namespaces | run | wall ms | start-up ms | Kubernetes work ms | audit + Lease release + exit ms "
           "| floor ms | Kubernetes work × floor |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    any_row = False
    for r in s["ours"]:
        for phase in ("down_phases", "up_phases"):
            p = r.get(phase)
            if not p or not p.get("phases_s"):
                continue
            any_row = True
            start, k8s, tail = p["phases_s"]
            out.append(f"| {r['namespaces']} | {phase.split('_')[0]} | {p['wall_s']*1000:.0f} | {start*1000:.0f} "
                       f"| {k8s*1000:.0f} | {tail*1000:.0f} | {p['floor_s']*1000:.0f} | {k8s / p['floor_s']:.2f} |")
    return "\n".join(out) if any_row else "Not measured."


def baseline_table(s):
    ours = {r["namespaces"]: r for r in s["ours"]}
    base = {r["namespaces"]: r for r in s["baseline"]}
    if not base:
        return "Not run (BASELINE_SIZES empty).", {}
    smallest = min(base)
    out = ["| namespaces | run | kubectl (one process per workload step) | processes | kubectl max RSS MiB "
           "| ours | ours faster by |", "|---:|---|---|---:|---:|---:|---:|"]
    ratios = {}
    for n in sorted(set(ours) | set(base)):
        if n not in ours:
            continue
        for phase in ("down", "up"):
            if n in base:
                b = base[n][phase]
                wall, label, procs, rss = b["wall_s"], "measured", b["processes"], f"{mib(b['max_process_rss_kb']):.1f}"
            else:
                b = base[smallest][phase]
                wall = b["wall_s"] / smallest * n
                label, procs, rss = f"extrapolated ×{n / smallest:g} from {smallest}", b["processes"] // smallest * n, "–"
            ours_s = ours[n][phase]["wall_s"]
            ratios[(n, phase)] = (wall / ours_s, label)
            out.append(f"| {n} | {phase} | {wall:.1f} s ({label}) | {procs} | {rss} | {ours_s*1000:.0f} ms "
                       f"| {wall / ours_s:.0f}× |")
    return "\n".join(out), ratios


def side_by_side(g):
    """Per regime and size: ours and py-kube-downscaler, one `down` each."""
    if not g or not g.get("peer"):
        return "Not run: ../shared/peers was not found (py-kube-downscaler's source comes with it)."
    out = []
    head = ("| namespaces | tool | wall ms | API requests (by verb) | left off target | other workloads touched "
            "| peak RSS MiB | CPU ms | exit | peer ÷ ours (wall) |")
    for regime, title in (("standin", f"Stand-in, {g['latency_ms']} ms injected per request (round-trip bound)"),
                          ("real", "Real control plane: kube-apiserver v1.32 + etcd + kube-controller-manager on the "
                                   "same 2 cores (server bound); requests from the apiserver's audit log")):
        rows = g.get(regime) or []
        out.append(f"**{title}**\n")
        if not rows:
            out.append("Not run.\n")
            continue
        out += [head, "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            o, p = r.get("ours"), r.get("peer")
            for name, t in (("ours", o), ("py-kube-downscaler", p)):
                if not t:
                    continue
                ratio = f"{p['wall_s'] / o['wall_s']:.1f}×" if (o and p and name != "ours") else ""
                out.append(f"| {r['namespaces']} | {name} | {t['wall_s']*1000:.0f} | {t['requests']} "
                           f"({verbs({k.lower(): v for k, v in t['by_verb'].items()})}) | {t['not_at_target']} "
                           f"| {t['others_touched']} | {mib(t['maxrss_kb']):.1f} | {t['cpu_s']*1000:.0f} "
                           f"| {t['exit']} | {ratio} |")
        out.append("")
    return "\n".join(out)


def etcd_reads(g):
    """The no-op on the real control plane, before and after, from the apiserver's metrics."""
    rows = [r for r in (g or {}).get("real", []) if r.get("noop")]
    if not rows:
        return "Not measured (no real control plane)."
    out = ["| namespaces | binary | wall ms | API requests (by verb) | lists served by etcd "
           "| objects etcd read for lists | lists served by the watch cache |",
           "|---:|---|---:|---|---:|---:|---:|"]
    for r in rows:
        for label in ("before", "after"):
            t = r["noop"].get(label)
            if not t:
                continue
            st = t["storage"]
            out.append(f"| {r['namespaces']} | {label} | {t['wall_s']*1000:.0f} | {t['requests']} "
                       f"({verbs({k.lower(): v for k, v in t['by_verb'].items()})}) "
                       f"| {st['apiserver_storage_list_total']:.0f} | {st['apiserver_storage_list_fetched_objects_total']:.0f} "
                       f"| {st['apiserver_cache_list_total']:.0f} |")
    return "\n".join(out)


def targets(s, ratios, check, g=None):
    ours = {r["namespaces"]: r for r in s["ours"]}
    rows = ["| target | measured | met |", "|---|---|---|"]

    def row(name, value, ok):
        rows.append(f"| {name} | {value} | {'yes' if ok else '**no**'} |")

    for n in (200, 2000):
        if n not in ours:
            continue
        for p in ("down", "up"):
            v = ours[n][p]["vs_floor"]
            row(f"within {TARGET_FLOOR}× of the floor ({n} namespaces, {p})", f"{v:.2f}×", v <= TARGET_FLOOR)
    if 200 in ours:
        for p in ("down", "up"):
            if (200, p) in ratios:
                r, label = ratios[(200, p)]
                row(f"≥ {TARGET_BASELINE}× faster than kubectl (200, {p})", f"{r:.0f}× (kubectl {label})",
                    r >= TARGET_BASELINE)
    big = max(ours) if ours else None
    if big:
        n = ours[big]["noop"]["requests"]
        row(f"no-op run ≤ {TARGET_NOOP} requests ({big} namespaces)", f"{n} requests, "
            f"{ours[big]['noop']['wall_s']*1000:.0f} ms", n <= TARGET_NOOP)
        rss = max(mib(ours[big][p]["maxrss_kb"]) for p in ("down", "up", "noop"))
        row(f"peak RSS < {TARGET_RSS_MB} MB at {big} namespaces", f"{rss:.1f} MiB ({rss*1.048576:.1f} MB)",
            rss * 1.048576 < TARGET_RSS_MB)
    for regime, name in (("standin", "stand-in"), ("real", "real control plane")):
        runs = [(r["namespaces"], r["ours"]) for r in (g or {}).get(regime, []) if r.get("ours")]
        if runs:
            left = sum(t["not_at_target"] + t["others_touched"] for _, t in runs)
            row(f"ours leaves 0 workloads off target ({name}, down)",
                ", ".join(f"{n}: {t['not_at_target']}" for n, t in runs), left == 0)
    real_noop = [r["noop"]["after"] for r in (g or {}).get("real", []) if r.get("noop", {}).get("after")]
    if real_noop:
        st = real_noop[-1]["storage"]
        row("a no-op reads nothing from etcd (real control plane)",
            f"{st['apiserver_storage_list_total']:.0f} lists served by etcd, "
            f"{st['apiserver_cache_list_total']:.0f} by the watch cache", st["apiserver_storage_list_total"] == 0)
    if big and calls(ours[big].get("noop")) is not None:
        total = calls(ours[big]["noop"])[0]
        row(f"a no-op run makes no DynamoDB call ({big} namespaces)", f"{total} calls", total == 0)
    if "check" in check:
        mn, med, x = check["check"]
        row(f"`check` < {TARGET_CHECK_MS} ms", f"median {med:.2f} ms, min {mn:.2f} ms ({x:.1f}× /bin/true)",
            med < TARGET_CHECK_MS)
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", required=True)
    ap.add_argument("--check", required=True)
    ap.add_argument("--regimes", help="benches/regimes.py output")
    ap.add_argument("--out", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--fault-campaign")
    ap.add_argument("--fleet", help="benches/fleet.py output")
    a = ap.parse_args()
    s = json.load(open(a.scale, encoding="utf-8"))
    g = json.load(open(a.regimes, encoding="utf-8")) if a.regimes and os.path.exists(a.regimes) else None
    check_text = open(a.check, encoding="utf-8").read()
    check = check_rows(check_text)
    kept = kept_blocks(a.out)
    if a.fault_campaign:
        lines = [l for l in open(a.fault_campaign, encoding="utf-8").read().splitlines()
                 if l.startswith(("fault campaign", "  ", "VIOLATION")) and "…" not in l]
        lines = [l if len(l) < 400 else l[:400] + " …" for l in lines]
        kept.pop("fault-campaign", None)
        fault = HOW_TO_CAMPAIGN + "\nOutput of the last recorded campaign (`scripts/bench.sh` with FAULT_ROUNDS or " \
            "FAULT_LOG):\n\n```\n" + \
            "\n".join(lines) + "\n```"
    else:
        fault = HOW_TO_CAMPAIGN + "\nNot recorded yet."
    scale = scale_tables(s) + "\n\n" + before_table(s)
    dynamo = dynamo_table(s)
    fleet = fleet_table(json.load(open(a.fleet, encoding="utf-8")) if a.fleet and os.path.exists(a.fleet) else None)
    phases = phase_table(s)
    base, ratios = baseline_table(s)
    tgt = targets(s, ratios, check, g)
    peers = side_by_side(g)
    etcd = etcd_reads(g)
    today = datetime.date.today().isoformat()
    doc = f"""# Benchmarks

Regenerated by `scripts/bench.sh` ({today}; {a.machine}). Every figure is a whole process: the
release binary spawned by `benches/scale.py` (or `benches/regimes.py`, beside py-kube-downscaler)
against a `kube-standin` process (our Kubernetes API stand-in) with an injected per-request
latency, or against a real kube-apiserver v1.32 where a table says so; audit records written to
DynamoDB Local. Wall time is spawn to reap; CPU comes from `wait4`'s rusage of that process, peak
RSS from GNU time's; API requests are the stand-in's counter (on the real apiserver, its audit
log). The fixture's pod templates carry cpu/memory requests, which discovery parses. No test
asserts on any of these numbers.

**The floor** = (writes / `SCALE_CONCURRENCY` + list calls) × round-trip, with the writes and
lists counted by the stand-in for that very run (workload patches, namespace labels, Events, the
Lease) and the round-trip taken as the injected latency. It ignores start-up, the Lease
round-trips that must happen one after another, and the audit write.

## Targets

{tgt}

{block("analysis", kept, "_Hand-written analysis goes here; it is kept when the file is regenerated._")}

## Scale and growth

{scale}

### DynamoDB calls (the write-ahead audit)

Every DynamoDB request of each run above, counted by `benches/dynamo_count.py` (a proxy in front
of DynamoDB Local, by `X-Amz-Target`), with the same runs of the binary of the commit before the
write-ahead audit (`AUDIT_BEFORE_REV`) beside them. "Per namespace changed" divides by the
namespaces the run changed (all of them, for a down or an up from the other state).

{dynamo}

### DynamoDB calls with the fleet's windows

`benches/fleet.py`: each binary against its own stand-in and fresh tables, every call counted by
`benches/dynamo_count.py`; "before" is the binary of `FLEET_BEFORE_REV`, the commit before `up`
and requests were granted through the windows table (docs/fleet.md). A grant adds one Query per
cost center with new requests and one TransactWriteItems per round of at most 100 writes (each
round reads its cost centers again); a run with no request and no window to release adds none.

{fleet}

### Where the time goes

A separate run of each (not the one in the table above), with the stand-in's request counter
sampled every 2 ms: start-up is spawn → first API request; the Kubernetes work is first request →
last Event (every request but the Lease release); the tail is the audit write to DynamoDB Local,
the Lease release and exit.

{phases}

## Side by side with py-kube-downscaler

The tool users pick for this job today (`../shared/peers/py-kube-downscaler`, run from source in
the venv `.tools/pkd` with new-pykube 26.3.0): `{(g or {}).get("peer_args", "")}`. Each tool scales
down a fixture of its own (same shape: N namespaces × 5 Deployments + 1 StatefulSet + 1 CronJob,
pod templates with requests) in the same cluster, one after the other, by `benches/regimes.py`.
Ours is limited to its fixture with `NAMESPACE_SELECTOR`, the peer with `--exclude-namespaces`
(a regex that fullmatches every namespace but its fixture's); after each run every workload is
listed: "left off target" is the tool's own workloads still running, "other workloads touched"
those outside its fixture whose state the run changed (a namespace filter that leaked).

{peers}

### A no-op's reads from etcd (real control plane)

Ours again on its fixture, already down (nothing to change), with the apiserver's own metrics read
before and after (`apiserver_storage_list_total`: lists served from etcd,
`apiserver_storage_list_fetched_objects_total`: objects etcd read for them,
`apiserver_cache_list_total`: lists served by the watch cache). "before" is the binary of the commit
before the lists moved to the watch cache (`BEFORE_REV`), "after" the one measured here.

{etcd}

## Against the kubectl baseline

The old service's pattern: per namespace one `kubectl get deployments,statefulsets,cronjobs -o json`,
then per workload two `kubectl` processes (`annotate` with the original, then `scale` — or
`patch` for a CronJob's `suspend`), one after another, same stand-in, same latency.

{base}

## Start-up (`scripts/bench-check.sh`)

```
{check_text.strip()}
```

## Fault campaign

{block("fault-campaign", kept, fault)}
"""
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(doc)
    print("\n".join(["", "== targets", tgt, "", "== scale", scale, "", "== DynamoDB calls", dynamo, "", "== fleet", fleet, "",
                     "== phases", phases, "",
                     "== side by side", peers, "", "== etcd reads", etcd, "", "== kubectl baseline", base, ""]))


if __name__ == "__main__":
    main()
