#!/usr/bin/env python3
"""DynamoDB calls per run with the fleet's windows table (docs/fleet.md), before and after:
each binary in turn against its own kube-standin (ActivationRequests enabled) and fresh tables
in DynamoDB Local, every call counted by benches/dynamo_count.py in front of it. Prints JSON.

At N namespaces (default 200) in 10 cost centers of N/10 each (cap N/10 each):
  - "noop": a scheduled `run` with nothing to change and no request (after a first run took the
    namespaces down);
  - "requests": a `run` that grants N pending ActivationRequests (one per namespace), then
    "noop after requests", the same run again (the requests answered, their windows open);
  - "up": N namespaces brought up by `up`, one `up` per cost center (N/10 namespaces each),
    calls summed over the ten.

    python3 benches/fleet.py --bin NOW --before-bin BEFORE --standin kube-standin [--namespaces 200]

Needs DYNAMODB_ENDPOINT_URL (DynamoDB Local); scripts/bench.sh runs it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dynamo_count import CountingProxy  # noqa: E402
from scale import Standin, ns, workload  # noqa: E402

OFF_HOURS = "2026-11-25T20:00:00-05:00"
UNTIL = "2026-11-26T00:00:00-05:00"
CC_LABEL = "namespace-scheduler/cost-center"
COST_CENTERS = 10


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def names(n):
    return [(f"fleet-{i:04d}", f"FLEET-{i % COST_CENTERS}") for i in range(n)]


def seed(n):
    objs = [ns("task-scheduler", {}), ns("kube-system", {})]
    for name, cc in names(n):
        objs.append(ns(name, {CC_LABEL: cc}))
        objs.append(workload("Deployment", name, "api", 2))
    return objs


def requests(n):
    return [{
        "apiVersion": "namespace-scheduler.io/v1alpha1",
        "kind": "ActivationRequest",
        "metadata": {"name": "tonight", "namespace": name},
        "spec": {"until": UNTIL, "requestedBy": "ana@example.com"},
    } for name, _ in names(n)]


def run(binary, env, args, proxy, expect=(0,)):
    proxy.reset()
    p = subprocess.run([binary, "--output", "json", *args], env=env, capture_output=True, text=True, timeout=600)
    if p.returncode not in expect:
        raise RuntimeError(f"{args[:3]} exit {p.returncode}: {p.stdout[-800:]}\n{p.stderr[-1500:]}")
    return proxy.counts()


def measure(label, binary, standin_bin, n, proxy, base_env, tag):
    log(f"== {label}: {binary} at {n} namespaces")
    env = dict(base_env,
               DYNAMODB_TABLE_NAME=f"fleet-audit-{tag}", PERMISSIONS_TABLE_NAME=f"fleet-permissions-{tag}",
               WINDOWS_TABLE_NAME=f"fleet-windows-{tag}")
    out = {"binary": label, "namespaces": n}
    with tempfile.TemporaryDirectory(prefix="ns-fleet-") as workdir:
        permissions = os.path.join(workdir, "permissions.json")
        with open(permissions, "w", encoding="utf-8") as f:
            json.dump([{"cost_center": f"FLEET-{k}", "is_authorized": True, "max_concurrent_namespaces": n // COST_CENTERS,
                        "authorized_namespaces": ["fleet-*"]} for k in range(COST_CENTERS)], f)
        # The before binary's `local-tables` may not know the windows table: it is made by the
        # one built now either way (the before binary never reads it).
        subprocess.run([base_env["NOW_BIN"], "local-tables"], env=env, check=True, capture_output=True)
        subprocess.run([binary, "populate", "--file", permissions], env=env, check=True, capture_output=True)

        st = Standin(standin_bin, workdir, "--enable-activation-requests")
        try:
            st.seed(seed(n))
            e = dict(env, KUBECONFIG=st.kubeconfig)
            run(binary, e, ["run", "--at", OFF_HOURS], proxy)
            out["noop"] = run(binary, e, ["run", "--at", OFF_HOURS], proxy)
            st.seed(requests(n))
            out["requests"] = run(binary, e, ["run", "--at", OFF_HOURS], proxy)
            out["noop_after_requests"] = run(binary, e, ["run", "--at", OFF_HOURS], proxy)
        finally:
            st.stop()

        st = Standin(standin_bin, workdir, "--enable-activation-requests")
        try:
            st.seed(seed(n))
            e = dict(env, KUBECONFIG=st.kubeconfig, WINDOWS_TABLE_NAME=f"fleet-windows-{tag}-up")
            subprocess.run([base_env["NOW_BIN"], "local-tables"], env=e, check=True, capture_output=True)
            run(binary, e, ["run", "--at", OFF_HOURS], proxy)
            total = {}
            for k in range(COST_CENTERS):
                chosen = [name for name, cc in names(n) if cc == f"FLEET-{k}"]
                c = run(binary, e, ["up", "--namespace", ",".join(chosen), "--cost-center", f"FLEET-{k}",
                                    "--for", "4h", "--at", OFF_HOURS], proxy)
                for op, v in c.items():
                    total[op] = total.get(op, 0) + v
            out["up"] = total
        finally:
            st.stop()
    log(f"   {json.dumps(out)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--before-bin", default="")
    ap.add_argument("--standin", required=True)
    ap.add_argument("--namespaces", type=int, default=200)
    a = ap.parse_args()
    proxy = CountingProxy(os.environ["DYNAMODB_ENDPOINT_URL"]).start()
    env = dict(os.environ, LOG_FORMAT="json", LOG_LEVEL="WARN", POD_NAMESPACE="task-scheduler",
               DYNAMODB_ENDPOINT_URL=proxy.url, EKS_CLUSTER_NAME="bench", NOW_BIN=a.bin,
               NON_BUSINESS_MAX_ACTIVE_NAMESPACES=str(a.namespaces))
    env.pop("NAMESPACE_SELECTOR", None)
    tag = os.getpid()
    out = {"namespaces": a.namespaces, "cost_centers": COST_CENTERS, "runs": []}
    if a.before_bin:
        out["runs"].append(measure("before", a.before_bin, a.standin, a.namespaces, proxy, env, f"{tag}-before"))
    out["runs"].append(measure("now", a.bin, a.standin, a.namespaces, proxy, env, f"{tag}-now"))
    proxy.stop()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
