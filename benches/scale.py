#!/usr/bin/env python3
"""Scale benchmark driver, run by scripts/bench.sh (which builds the binaries, starts DynamoDB
Local and writes BENCHMARKS.md). Standard library only.

Everything is a whole process against a `kube-standin` process with an injected per-request
latency:
  * our release binary: `run --at <off-hours>` (down), `run --at <business hours>` (up), and a
    second `run --at <business hours>` with everything already up (no-op); wall time (spawn to
    wait4), peak RSS and CPU from wait4's rusage, API requests by verb from the stand-in's counter,
    DynamoDB calls by operation from a counting proxy in front of DynamoDB Local
    (benches/dynamo_count.py), so an older binary is counted the same way;
  * the baseline the old Python service used: one `kubectl` process per workload and step
    (`annotate` + `scale`/`patch`), plus one `kubectl get` per namespace to discover, run one after
    another as the service did.

Prints a JSON document with every figure on stdout (progress goes to stderr).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from dynamo_count import CountingProxy

OFF_HOURS = "2026-11-25T20:00:00-05:00"  # a Wednesday, 20:00 in Bogotá: down
BUSINESS = "2026-11-25T10:00:00-05:00"  # the same Wednesday, 10:00: up
CC = "namespace-scheduler/cost-center"
DEPLOYMENTS, STATEFULSETS, CRONJOBS = 5, 1, 1
# Peak RSS through GNU time (its own wait4 on a child forked from a small process). wait4 on a
# child forked from this Python process would report Python's RSS at least: Linux carries the
# high-water mark of the forked address space across execve into ru_maxrss.
TIME = ["/usr/bin/time"] if os.access("/usr/bin/time", os.X_OK) else None


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Standin:
    """A `kube-standin` process driven through its /_standin/ admin surface."""

    def __init__(self, binary, workdir, *flags):
        """`flags`: more of kube-standin's, e.g. `--enable-activation-requests`."""
        self.kubeconfig = os.path.join(workdir, "kubeconfig")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--kubeconfig-out", self.kubeconfig, *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("kube-standin did not start")

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_standin/" + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"null")

    def seed(self, objects, chunk=4000):
        for i in range(0, len(objects), chunk):
            self.admin("POST", "objects", objects[i : i + chunk])

    def latency(self, ms):
        self.admin("PUT", "latency", {"ms": ms})

    def reset(self):
        self.admin("DELETE", "requests")

    def by_verb(self):
        return self.admin("GET", "stats")["byVerb"]

    def objects(self, api_version, kind):
        return self.admin("GET", f"objects?apiVersion={api_version}&kind={kind}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def replicas_for(i, j):
    """Deterministic, varied replica counts 1..5."""
    return 1 + (i * 7 + j * 3) % 5


def cluster(n):
    """`n` managed namespaces × (5 Deployments + 1 StatefulSet + 1 CronJob), plus the scheduler's
    own namespace (its Lease lives there) and kube-system."""
    objs = [ns("task-scheduler", {}), ns("kube-system", {})]
    for i in range(n):
        name = f"bench-{i:04d}"
        objs.append(ns(name, {CC: "IT-DEVELOPMENT"}))
        for j in range(DEPLOYMENTS):
            objs.append(workload("Deployment", name, f"deploy-{j}", replicas_for(i, j)))
        for j in range(STATEFULSETS):
            objs.append(workload("StatefulSet", name, f"db-{j}", replicas_for(i, j + 5)))
        for j in range(CRONJOBS):
            objs.append(cronjob(name, f"cron-{j}"))
    return objs


def ns(name, labels):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def workload(kind, namespace, name, replicas):
    spec = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            # Requests, as issue 12's fixture: discovery parses them (peak RSS measured with them).
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": spec,
    }


def cronjob(namespace, name):
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "*/15 * * * *",
            "suspend": False,
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "job", "image": "busybox:1.36", "command": ["true"]}],
            }}}},
        },
    }


class Poller(threading.Thread):
    """Samples the stand-in's request counter every few milliseconds while a run goes on, to
    split its wall time into start-up, the Kubernetes work, and the audit write + exit."""

    def __init__(self, standin, interval=0.002):
        super().__init__(daemon=True)
        self.standin, self.interval, self.samples, self.done = standin, interval, [], False

    def run(self):
        while not self.done:
            self.samples.append((time.perf_counter(), self.standin.admin("GET", "stats")["requests"]))
            time.sleep(self.interval)

    def phases(self, t0, t_end):
        """(start-up, Kubernetes work, audit + Lease release + exit) in seconds. The last request
        of a run is the Lease release, which follows the audit write."""
        total = self.samples[-1][1] if self.samples else 0
        first = next((t for t, n in self.samples if n >= 1), t_end)
        k8s_end = next((t for t, n in self.samples if n >= total - 1), t_end)
        return first - t0, k8s_end - first, t_end - k8s_end


def measure(argv, env, workdir, poller=None, cwd=None):
    """Runs one process to completion: wall time from spawn to reap, rusage from wait4."""
    out_path, err_path = os.path.join(workdir, "stdout"), os.path.join(workdir, "stderr")
    rss_path = os.path.join(workdir, "rss")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        if poller:
            poller.start()
        p = subprocess.Popen(TIME + ["-f", "%M", "-o", rss_path] + argv if TIME else argv,
                             env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd)
        _, status, ru = os.wait4(p.pid, 0)
        t_end = time.perf_counter()
        wall = t_end - t0
        if poller:
            poller.done = True
            poller.join()
        p.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, encoding="utf-8", errors="replace") as f:
        stdout = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    maxrss = ru.ru_maxrss  # Linux: kilobytes
    if TIME:
        with open(rss_path, encoding="utf-8") as f:
            maxrss = int(f.read().split()[-1])
    return {
        "wall_s": wall,
        "maxrss_kb": maxrss,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "code": p.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "phases_s": poller.phases(t0, t_end) if poller else None,
    }


def proc_cpu(pid):
    """CPU seconds (user + system) a running process has used so far, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


def cpu_delta(before, after):
    return None if before is None or after is None else after - before


def summary_of(stdout):
    for line in reversed(stdout.strip().splitlines()):
        try:
            v = json.loads(line)
            if isinstance(v, dict):
                return v
        except ValueError:
            pass
    try:
        return json.loads(stdout)
    except ValueError:
        return {}


def writes_of(verbs):
    return sum(verbs.get(v, 0) for v in ("create", "update", "patch", "delete"))


def check_state(standin, n, want_down):
    """Every managed workload at the target: (ok, how many are not)."""
    wrong = 0
    for kind in ("Deployment", "StatefulSet"):
        for o in standin.objects("apps/v1", kind):
            if not o["metadata"]["namespace"].startswith("bench-"):
                continue
            r = o["spec"].get("replicas")
            ann = o["metadata"].get("annotations", {}).get("namespace-scheduler/original-replicas")
            if want_down and (r != 0 or ann is None):
                wrong += 1
            if not want_down and (r == 0 or ann is not None):
                wrong += 1
    for o in standin.objects("batch/v1", "CronJob"):
        if o["metadata"]["namespace"].startswith("bench-") and bool(o["spec"].get("suspend")) != want_down:
            wrong += 1
    return wrong


def ours(args, size, env, workdir):
    """down, up and no-op `run` at `size` namespaces."""
    log(f"== namespace-scheduler at {size} namespaces")
    st = Standin(args.standin, workdir)
    try:
        st.seed(cluster(size))
        st.latency(args.latency_ms)
        e = dict(env, KUBECONFIG=st.kubeconfig)
        res = {"namespaces": size, "workloads": size * (DEPLOYMENTS + STATEFULSETS + CRONJOBS)}
        runs = [("down", OFF_HOURS, True), ("up", BUSINESS, False), ("noop", BUSINESS, False)]
        if size in args.phase_sizes:
            # Once more, with the request counter sampled, to see where the time goes.
            runs += [("down_phases", OFF_HOURS, True), ("up_phases", BUSINESS, False)]
        for phase, at, want_down in runs:
            st.reset()
            args.proxy.reset()
            poller = Poller(st) if phase.endswith("_phases") else None
            # The other processes on the same cores during the run: the stand-in, DynamoDB Local.
            side = [proc_cpu(st.proc.pid), proc_cpu(args.dynamo_pid)]
            m = measure([args.bin, "--output", "json", "run", "--at", at], e, workdir, poller)
            side = [cpu_delta(b, proc_cpu(p)) for b, p in zip(side, (st.proc.pid, args.dynamo_pid))]
            stats = st.admin("GET", "stats")
            dynamo_calls = args.proxy.counts()
            verbs, busy = stats["byVerb"], stats.get("busyUs", 0) / 1e6
            s = summary_of(m["stdout"])
            wrong = check_state(st, size, want_down)
            lists = verbs.get("list", 0)
            writes = writes_of(verbs)
            rtt = args.latency_ms / 1000.0
            floor = (writes / args.concurrency + lists) * rtt
            r = {
                "wall_s": m["wall_s"],
                "maxrss_kb": m["maxrss_kb"],
                "cpu_s": m["cpu_s"],
                "exit": m["code"],
                "requests": sum(verbs.values()),
                "by_verb": verbs,
                "writes": writes,
                "lists": lists,
                "floor_s": floor,
                "vs_floor": (m["wall_s"] / floor) if floor > 0 else None,
                "not_at_target": wrong,
                "summary_duration_ms": s.get("duration_ms"),
                "audit_records": s.get("audit_records"),
                "summary_changed": s.get("namespaces_changed"),
                "audit_error": s.get("audit_error"),
                "phases_s": m["phases_s"],
                # Little's law: the requests' durations added up over the wall time = how many
                # were in flight on average (SCALE_CONCURRENCY bounds the writes among them).
                "busy_s": busy,
                "mean_response_ms": busy * 1000 / max(1, sum(verbs.values())),
                "in_flight": busy / m["wall_s"],
                "standin_cpu_s": side[0],
                "dynamo_cpu_s": side[1],
                "dynamo_calls": dynamo_calls,
            }
            if m["code"] != 0:
                r["stderr_tail"] = m["stderr"].strip().splitlines()[-5:]
            res[phase] = r
            log(
                f"   {phase:5} {m['wall_s']*1000:9.1f} ms  exit {m['code']}  requests {r['requests']} {verbs}"
                f"  rss {m['maxrss_kb']/1024:.1f} MiB  floor {floor*1000:.1f} ms  not at target {wrong}"
                f"  DynamoDB {dynamo_calls}"
            )
        return res
    finally:
        st.stop()


def kubectl_plan(size, direction):
    """The per-workload kubectl commands of the old service for one direction."""
    for i in range(size):
        name = f"bench-{i:04d}"
        yield ["get", "deployments,statefulsets,cronjobs", "-n", name, "-o", "json"]
        for kind, names in (("deployment", [f"deploy-{j}" for j in range(DEPLOYMENTS)]),
                            ("statefulset", [f"db-{j}" for j in range(STATEFULSETS)])):
            for j, w in enumerate(names):
                orig = replicas_for(i, j if kind == "deployment" else j + 5)
                ref = f"{kind}/{w}"
                if direction == "down":
                    yield ["annotate", ref, f"namespace-scheduler/original-replicas={orig}", "--overwrite", "-n", name]
                    yield ["scale", ref, "--replicas=0", "-n", name]
                else:
                    yield ["scale", ref, f"--replicas={orig}", "-n", name]
                    yield ["annotate", ref, "namespace-scheduler/original-replicas-", "-n", name]
        for j in range(CRONJOBS):
            ref = f"cronjob/cron-{j}"
            if direction == "down":
                yield ["annotate", ref, "namespace-scheduler/original-suspend=false", "--overwrite", "-n", name]
                yield ["patch", ref, "-p", '{"spec":{"suspend":true}}', "-n", name]
            else:
                yield ["patch", ref, "-p", '{"spec":{"suspend":false}}', "-n", name]
                yield ["annotate", ref, "namespace-scheduler/original-suspend-", "-n", name]


def baseline(args, size, workdir):
    """kubectl, one process per step, sequential, against the same kind of stand-in."""
    log(f"== kubectl baseline at {size} namespaces (one process per workload step, sequential)")
    st = Standin(args.standin, workdir)
    cache = os.path.join(workdir, "kubectl-cache")
    try:
        st.seed(cluster(size))
        st.latency(args.latency_ms)
        env = dict(os.environ, KUBECONFIG=st.kubeconfig)
        res = {"namespaces": size, "workloads": size * (DEPLOYMENTS + STATEFULSETS + CRONJOBS)}
        for direction, want_down in (("down", True), ("up", False)):
            st.reset()
            total, rss, cpu, procs, failures = 0.0, 0, 0.0, 0, 0
            for cmd in kubectl_plan(size, direction):
                m = measure([args.kubectl, "--cache-dir", cache] + cmd, env, workdir)
                total += m["wall_s"]
                rss = max(rss, m["maxrss_kb"])
                cpu += m["cpu_s"]
                procs += 1
                failures += m["code"] != 0
            verbs = st.by_verb()
            wrong = check_state(st, size, want_down)
            res[direction] = {
                "wall_s": total,
                "processes": procs,
                "failures": failures,
                "max_process_rss_kb": rss,
                "cpu_s": cpu,
                "requests": sum(verbs.values()),
                "by_verb": verbs,
                "not_at_target": wrong,
                "per_workload_s": total / res["workloads"],
            }
            log(f"   {direction:5} {total:8.1f} s  {procs} processes ({failures} failed)  requests {sum(verbs.values())}"
                f"  max rss {rss/1024:.1f} MiB  not at target {wrong}")
        return res
    finally:
        st.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--standin", required=True)
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--sizes", default="20,200,2000")
    ap.add_argument("--baseline-sizes", default="20")
    ap.add_argument("--latency-ms", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--phase-sizes", default="200", help="sizes also measured with the phase breakdown")
    ap.add_argument("--dynamo-pid", type=int, default=0, help="DynamoDB Local's pid, to read its CPU time")
    ap.add_argument("--before-bin", default="", help="an older commit's binary, also run at the largest size")
    ap.add_argument("--audit-before-bin", default="",
                    help="the binary of the commit before the write-ahead audit, run at --dynamo-sizes")
    ap.add_argument("--dynamo-sizes", default="200", help="sizes also run with --audit-before-bin")
    a = ap.parse_args()
    a.phase_sizes = [int(x) for x in a.phase_sizes.split(",") if x.strip()]
    # Every run's DynamoDB calls, counted in front of DynamoDB Local.
    a.proxy = CountingProxy(os.environ["DYNAMODB_ENDPOINT_URL"]).start()
    env = dict(os.environ, SCALE_CONCURRENCY=str(a.concurrency), LOG_FORMAT="json", LOG_LEVEL="INFO",
               POD_NAMESPACE="task-scheduler", DYNAMODB_ENDPOINT_URL=a.proxy.url)
    out = {"latency_ms": a.latency_ms, "concurrency": a.concurrency, "ours": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="ns-bench-") as workdir:
        # Warm-up, not recorded: DynamoDB Local (a JVM) answers its first requests slowly.
        warm = argparse.Namespace(**vars(a))
        warm.phase_sizes = []
        ours(warm, 5, env, workdir)
        sizes = [int(s) for s in a.sizes.split(",") if s.strip() and int(s) > 0]
        for size in sizes:
            out["ours"].append(ours(a, size, env, workdir))
        if a.before_bin and sizes:
            # The same runs with the binary from before the lists moved to the watch cache.
            before = argparse.Namespace(**vars(a))
            before.bin, before.phase_sizes = a.before_bin, []
            out["before"] = ours(before, max(sizes), env, workdir)
        if a.audit_before_bin:
            # The same runs with the binary from before the write-ahead audit: its DynamoDB calls.
            before = argparse.Namespace(**vars(a))
            before.bin, before.phase_sizes = a.audit_before_bin, []
            out["audit_before"] = [ours(before, int(n), env, workdir)
                                   for n in a.dynamo_sizes.split(",") if n.strip() and int(n) > 0]
        for size in [int(s) for s in a.baseline_sizes.split(",") if s.strip() and int(s) > 0]:
            out["baseline"].append(baseline(a, size, workdir))
    a.proxy.stop()
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
