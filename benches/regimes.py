#!/usr/bin/env python3
"""Side by side with py-kube-downscaler, and what a run's lists cost etcd; run by scripts/bench.sh.
Standard library only (the peer runs in its own venv).

The same fixture (N namespaces × 5 Deployments + 1 StatefulSet + 1 CronJob, pod templates with
requests), one `down` pass of each tool, each on a fixture of its own, one after the other:

  * stand-in: a kube-standin process with an injected per-request latency (round-trip bound,
    like a remote EKS control plane). API requests: the stand-in's counter.
  * real: kube-apiserver v1.32 + etcd + kube-controller-manager of scripts/control-plane.sh on
    this machine (server bound: they share the 2 cores with the tool). Both fixtures exist
    before either tool runs, so both list the same cluster. API requests: the apiserver's audit
    log, by user agent (the controller manager's own requests, reacting to the scale-downs, are
    not the tool's). Workload replicas are 1 there: with no nodes every pod stays Pending, and
    the controller manager (20 requests/s) needs minutes to create them; the run waits until the
    pod count settles before each tool, so neither runs beside the other's aftermath.

Ours runs with NAMESPACE_SELECTOR on its fixture's label; the peer with `--exclude-namespaces`
set to a regex that fullmatches every namespace but its fixture's (`(?!pkd-N-\\d{4}$).*`); after
each run every workload of both fixtures is listed, and "left off target" counts the tool's
workloads still running (replicas ≠ 0, CronJob not suspended) and any other fixture's workload
that was touched. On the real control plane ours also runs a no-op (everything already down)
with the apiserver's storage metrics read before and after: the lists etcd served and the
objects it read, and the lists the watch cache served; with --before-bin the binary of an
older commit does the same no-op, for the figures before the lists moved to the watch cache.

Prints a JSON document on stdout (progress on stderr).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scale  # noqa: E402  (same directory)

PEER_ARGS = ["-m", "kube_downscaler", "--once", "--grace-period", "0", "--default-downtime", "always",
             "--include-resources", "deployments,statefulsets,cronjobs"]
OTHERS_UA = ("kube-controller-manager", "kube-apiserver", "kubectl")
STORAGE_METRICS = ("apiserver_storage_list_total", "apiserver_storage_list_fetched_objects_total",
                   "apiserver_cache_list_total")
log = scale.log


def fixture(n, prefix, label, replicas=None):
    """`n` namespaces `<prefix>-NNNN` labelled bench-run=<label>, each with the usual seven."""
    objs = []
    for i in range(n):
        name = f"{prefix}-{i:04d}"
        objs.append(scale.ns(name, {"bench-run": label, scale.CC: "IT-DEVELOPMENT"}))
        for j in range(scale.DEPLOYMENTS):
            objs.append(scale.workload("Deployment", name, f"deploy-{j}", replicas or scale.replicas_for(i, j)))
        for j in range(scale.STATEFULSETS):
            objs.append(scale.workload("StatefulSet", name, f"db-{j}", replicas or scale.replicas_for(i, j + 5)))
        for j in range(scale.CRONJOBS):
            objs.append(scale.cronjob(name, f"cron-{j}"))
    return objs


def states(items):
    """Every workload of every fixture: down or not."""
    out = {}
    for o in items:
        ns = o["metadata"]["namespace"]
        if re.fullmatch(r"(nss|pkd|bench)\d*-\d{4}", ns):
            spec = o.get("spec", {})
            down = spec.get("suspend") is True if o["kind"] == "CronJob" else spec.get("replicas", 1) == 0
            out[(o["kind"], ns, o["metadata"]["name"])] = down
    return out


def off_target(before, after, prefix):
    """(the tool's workloads still running, other workloads whose state the run changed)."""
    running = sum(1 for (_, ns, _), down in after.items() if ns.startswith(prefix + "-") and not down)
    touched = sum(1 for k, down in after.items() if not k[1].startswith(prefix + "-") and before.get(k) != down)
    return running, touched


def peer_argv(python, prefix):
    return [python] + PEER_ARGS + ["--exclude-namespaces", rf"(?!{prefix}-\d{{4}}$).*"]


def row(m, requests, by_verb, running, touched, extra=None):
    r = {"wall_s": m["wall_s"], "maxrss_kb": m["maxrss_kb"], "cpu_s": m["cpu_s"], "exit": m["code"],
         "requests": requests, "by_verb": by_verb, "not_at_target": running, "others_touched": touched}
    if m["code"] != 0:
        r["stderr_tail"] = m["stderr"].strip().splitlines()[-5:]
    r.update(extra or {})
    return r


def show(tool, r):
    log(f"   {tool:6} {r['wall_s']*1000:9.0f} ms  exit {r['exit']}  requests {r['requests']}  "
        f"rss {r['maxrss_kb']/1024:.1f} MiB  cpu {r['cpu_s']*1000:.0f} ms  left off target {r['not_at_target']}"
        f"  others touched {r['others_touched']}")


# ---------- stand-in regime ----------

def standin_size(a, n, env, workdir):
    log(f"== stand-in, {n} namespaces, {a.latency_ms} ms per request")
    out = {"namespaces": n, "workloads": n * 7}
    for tool in ("ours", "peer"):
        prefix = "nss" if tool == "ours" else "pkd"
        st = scale.Standin(a.standin, workdir)
        try:
            st.seed([scale.ns("task-scheduler", {}), scale.ns("kube-system", {})] +
                    fixture(n, prefix, prefix) + fixture(1, "bench", "decoy"))
            st.latency(a.latency_ms)
            listed = lambda: states(o for k, av in (("Deployment", "apps/v1"), ("StatefulSet", "apps/v1"),  # noqa: E731
                                                    ("CronJob", "batch/v1")) for o in st.objects(av, k))
            start = listed()
            st.reset()
            e = dict(env, KUBECONFIG=st.kubeconfig, NAMESPACE_SELECTOR=f"bench-run={prefix}")
            if tool == "ours":
                m = scale.measure([a.bin, "--output", "json", "run", "--at", scale.OFF_HOURS], e, workdir)
            else:
                m = scale.measure(peer_argv(a.peer_python, prefix), dict(e, PYTHONDONTWRITEBYTECODE="1"),
                                  workdir, cwd=a.peer_dir)
            verbs = st.by_verb()
            running, touched = off_target(start, listed(), prefix)
            out[tool] = row(m, sum(verbs.values()), verbs, running, touched)
            show(tool, out[tool])
        finally:
            st.stop()
    return out


# ---------- real control plane ----------

class Real:
    def __init__(self, kubeconfig, audit_log):
        self.kubeconfig, self.audit_log = kubeconfig, audit_log

    def kubectl(self, *args, stdin=None):
        p = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin,
                           capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {p.stderr[-500:]}")
        return p.stdout

    def create(self, objs, chunk=2000):
        for i in range(0, len(objs), chunk):
            self.kubectl("create", "-f", "-", "-o", "name",
                         stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[i:i + chunk]}))

    def count(self, path):
        d = json.loads(self.kubectl("get", "--raw", path + "?limit=1"))
        return len(d["items"]) + d["metadata"].get("remainingItemCount", 0)

    def settle(self, limit_s):
        """Waits until the controller manager is done: the pod count unchanged for 6 s."""
        t0, last, same = time.time(), -1, 0
        while time.time() - t0 < limit_s:
            n = self.count("/api/v1/pods")
            same = same + 1 if n == last else 0
            if same >= 3:
                break
            last = n
            time.sleep(2)
        return {"pods": last, "waited_s": round(time.time() - t0, 1)}

    def workloads(self):
        d = json.loads(self.kubectl("get", "deployments,statefulsets,cronjobs", "-A", "-o", "json"))
        return d["items"]

    def metrics(self):
        sums = {}
        for line in self.kubectl("get", "--raw", "/metrics").splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in STORAGE_METRICS:
                sums[name] = sums.get(name, 0) + float(line.rsplit(" ", 1)[1])
        return sums

    def audit_offset(self):
        return os.path.getsize(self.audit_log)

    def requests_since(self, offset):
        """The tool's requests (any user agent but the control plane's own and kubectl's)."""
        verbs = {}
        time.sleep(0.5)  # the last events of the run reach the log
        with open(self.audit_log, "rb") as f:
            f.seek(offset)
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("stage") != "ResponseComplete" or ev.get("userAgent", "").startswith(OTHERS_UA):
                    continue
                verbs[ev["verb"]] = verbs.get(ev["verb"], 0) + 1
        return sum(verbs.values()), verbs


def real_size(a, n, env, workdir, cluster):
    log(f"== real control plane, {n} namespaces (replicas 1)")
    out = {"namespaces": n, "workloads": n * 7}
    t0 = time.time()
    cluster.create(fixture(n, f"nss{n}", f"nss{n}", 1) + (fixture(n, f"pkd{n}", f"pkd{n}", 1) if a.peer_dir else []))
    out["fixture_s"] = round(time.time() - t0, 1)
    e = dict(env, KUBECONFIG=cluster.kubeconfig, NAMESPACE_SELECTOR=f"bench-run=nss{n}")
    for tool in ("ours", "peer") if a.peer_dir else ("ours",):
        prefix = f"nss{n}" if tool == "ours" else f"pkd{n}"
        settled = cluster.settle(a.settle_s)
        start, offset = states(cluster.workloads()), cluster.audit_offset()
        if tool == "ours":
            m = scale.measure([a.bin, "--output", "json", "run", "--at", scale.OFF_HOURS], e, workdir)
        else:
            m = scale.measure(peer_argv(a.peer_python, prefix), dict(e, PYTHONDONTWRITEBYTECODE="1"),
                              workdir, cwd=a.peer_dir)
        requests, verbs = cluster.requests_since(offset)
        running, touched = off_target(start, states(cluster.workloads()), prefix)
        out[tool] = row(m, requests, verbs, running, touched, {"settled_before": settled})
        show(tool, out[tool])
    # A no-op of ours (its fixture is down), with the storage metrics around it; the same with
    # the binary from before the lists moved to the watch cache.
    out["noop"] = {}
    for label, binary in (("before", a.before_bin), ("after", a.bin)):
        if not binary:
            continue
        cluster.settle(a.settle_s)
        before, offset = cluster.metrics(), cluster.audit_offset()
        m = scale.measure([binary, "--output", "json", "run", "--at", scale.OFF_HOURS], e, workdir)
        requests, verbs = cluster.requests_since(offset)
        after = cluster.metrics()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in STORAGE_METRICS}
        out["noop"][label] = row(m, requests, verbs, 0, 0, {"storage": delta, "binary": binary})
        log(f"   no-op {label}: {m['wall_s']*1000:.0f} ms, {requests} requests {verbs}, {delta}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--before-bin", default="")
    ap.add_argument("--standin", required=True)
    ap.add_argument("--peer-dir", default="")
    ap.add_argument("--peer-python", default="")
    ap.add_argument("--standin-sizes", default="20,200,2000")
    ap.add_argument("--real-sizes", default="20,200")
    ap.add_argument("--kubeconfig", default="", help="the real control plane (none: regime skipped)")
    ap.add_argument("--audit-log", default="")
    ap.add_argument("--latency-ms", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--settle-s", type=int, default=300)
    a = ap.parse_args()
    sizes = lambda s: [int(x) for x in s.split(",") if x.strip() and int(x) > 0]  # noqa: E731
    env = dict(os.environ, SCALE_CONCURRENCY=str(a.concurrency), LOG_FORMAT="json", LOG_LEVEL="INFO",
               POD_NAMESPACE="task-scheduler")
    out = {"latency_ms": a.latency_ms, "concurrency": a.concurrency, "standin": [], "real": [],
           "peer": bool(a.peer_dir), "peer_args": " ".join(PEER_ARGS[2:] + ["--exclude-namespaces",
                                                                              r"'(?!pkd-N-\d{4}$).*'"])}
    with tempfile.TemporaryDirectory(prefix="ns-regimes-") as workdir:
        if a.peer_dir:
            for n in sizes(a.standin_sizes):
                out["standin"].append(standin_size(a, n, env, workdir))
        if a.kubeconfig:
            cluster = Real(a.kubeconfig, a.audit_log)
            try:
                cluster.create([scale.ns("task-scheduler", {})])
            except RuntimeError:
                pass  # there already
            for n in sizes(a.real_sizes):
                out["real"].append(real_size(a, n, env, workdir, cluster))
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
