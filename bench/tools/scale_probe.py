#!/usr/bin/env python3
"""Helpers of bench/scale.sh (Python 3.11 stdlib only).

  scale_probe.py start --url http://127.0.0.1:9000 --apps 1000 [--version v2]
      POST /api/v1/apps/appNNNN/start for every app over one keep-alive connection; prints JSON
      {"apps", "seconds", "p50_ms", "p99_ms", "max_ms"}.
  scale_probe.py wait-ticks --url URL --ticks N [--timeout S]
      waits until canary_pilot_tick_duration_seconds_count has grown by N.
  scale_probe.py measure --url URL --pid PID --seconds S [--every 2] [--prometheus URL]
                         [--fixture URL]
      samples the controller for S seconds and prints JSON: ticks, per-tick durations (from the
      growth of _sum whenever _count grew by one between two samples), mean and p99 from the
      histogram's buckets, VmRSS (max over samples, end) and VmHWM, CPU seconds (utime + stime),
      Prometheus /api/v1/query requests and fixture scrapes during the period, and at the end
      the phase and last verdict of every app.
      The period starts and ends right after a tick ended, so that every query and scrape it
      counts belongs to a tick it counts.
  scale_probe.py burst --url URL --pid PID --fixture URL --share 0.5 [--timeout S]
      sets the fixture's canary error share (every app's canary turns bad at once) and follows
      the ticks until every app is rolled back; prints JSON: rollback events' times from the
      change, tick durations, CPU, RSS.
  scale_probe.py report SOURCE:APPS=RESULT.json...
      prints the markdown table of bench/results/4-scale.md.
"""
import argparse
import http.client
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")


def get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metrics(url: str) -> list[tuple[str, str, float]]:
    out = []
    for line in get(url).decode().splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def tick_histogram(base: str) -> dict:
    """{'count', 'sum', 'buckets': [(le, cumulative)], 'source_errors'} of the controller."""
    h = {"count": 0.0, "sum": 0.0, "buckets": [], "source_errors": 0.0, "rolled_back": 0}
    for name, labels, v in metrics(base + "/metrics"):
        if name == "canary_pilot_tick_duration_seconds_count":
            h["count"] = v
        elif name == "canary_pilot_tick_duration_seconds_sum":
            h["sum"] = v
        elif name == "canary_pilot_tick_duration_seconds_bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            h["buckets"].append((float("inf") if le == "+Inf" else float(le), v))
        elif name == "canary_pilot_source_errors_total":
            h["source_errors"] = v
        elif name == "canary_pilot_app_phase" and 'phase="rolled_back"' in labels:
            h["rolled_back"] += int(v)
    h["buckets"].sort()
    return h


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """histogram_quantile over cumulative (le, count) buckets, as Prometheus computes it."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le  # the highest finite bound
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def proc(pid: int) -> dict:
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return {"rss_kib": rss, "hwm_kib": hwm, "cpu_s": cpu}


def prom_queries(prom: str) -> float:
    total = 0.0
    for name, labels, v in metrics(prom + "/metrics"):
        if name == "prometheus_http_requests_total" and 'handler="/api/v1/query"' in labels:
            total += v
    return total


def cmd_start(a) -> None:
    u = urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    body = json.dumps({"version": a.version})
    lat = []
    t0 = time.monotonic()
    for i in range(1, a.apps + 1):
        s = time.monotonic()
        conn.request("POST", f"/api/v1/apps/app{i:04d}/start", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        if r.status != 200:
            sys.exit(f"start app{i:04d}: HTTP {r.status}: {text[:300]!r}")
        lat.append(time.monotonic() - s)
    secs = time.monotonic() - t0
    lat.sort()
    print(json.dumps({"apps": a.apps, "seconds": round(secs, 2),
                      "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
                      "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000, 1),
                      "max_ms": round(lat[-1] * 1000, 1)}))


def cmd_wait_ticks(a) -> None:
    first = tick_histogram(a.url)["count"]
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        if tick_histogram(a.url)["count"] >= first + a.ticks:
            return
        time.sleep(0.5)
    sys.exit(f"timed out after {a.timeout}s waiting for {a.ticks} ticks")


def after_tick(url: str, timeout: float = 300) -> dict:
    """The histogram right after the next tick ends (polled every 0.2 s)."""
    first = tick_histogram(url)["count"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        h = tick_histogram(url)
        if h["count"] > first:
            return h
    sys.exit(f"no tick ended within {timeout}s")


def cmd_measure(a) -> None:
    g0 = sum(app["generation"] for app in json.loads(get(a.url + "/api/v1/apps", timeout=60))["apps"])
    h0 = after_tick(a.url)
    p0 = proc(a.pid)
    q0 = prom_queries(a.prometheus) if a.prometheus else None
    f0 = json.loads(get(a.fixture + "/stats"))["scrapes"] if a.fixture else None
    t0 = time.monotonic()
    rss_max = p0["rss_kib"]
    durations, approx = [], 0
    prev = h0
    while True:
        left = t0 + a.seconds - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(a.every, left))
        h = tick_histogram(a.url)
        p = proc(a.pid)
        rss_max = max(rss_max, p["rss_kib"])
        n = int(round(h["count"] - prev["count"]))
        if n == 1:
            durations.append(h["sum"] - prev["sum"])
        elif n > 1:
            approx += n
            durations += [(h["sum"] - prev["sum"]) / n] * n
        prev = h
    h1 = after_tick(a.url)
    n = int(round(h1["count"] - prev["count"]))
    if n == 1:
        durations.append(h1["sum"] - prev["sum"])
    elif n > 1:
        approx += n
        durations += [(h1["sum"] - prev["sum"]) / n] * n
    elapsed = time.monotonic() - t0
    p1 = proc(a.pid)
    rss_max = max(rss_max, p1["rss_kib"])
    q1 = prom_queries(a.prometheus) if a.prometheus else None
    f1 = json.loads(get(a.fixture + "/stats"))["scrapes"] if a.fixture else None
    ticks = int(round(h1["count"] - h0["count"]))
    b0 = dict(h0["buckets"])
    delta_buckets = [(le, c - b0.get(le, 0.0)) for le, c in h1["buckets"]]
    apps = json.loads(get(a.url + "/api/v1/apps", timeout=60))["apps"]
    g1 = sum(app["generation"] for app in apps)
    phases, verdicts = {}, {}
    for app in apps:
        phases[app["phase"]] = phases.get(app["phase"], 0) + 1
        v = (app.get("last_analysis") or {}).get("verdict", "none")
        verdicts[v] = verdicts.get(v, 0) + 1
    out = {
        "seconds": round(elapsed, 1),
        "apps": len(apps),
        "ticks": ticks,
        "tick_mean_s": (h1["sum"] - h0["sum"]) / ticks if ticks else None,
        "tick_p99_s": bucket_quantile(0.99, delta_buckets),
        "tick_p50_s": bucket_quantile(0.50, delta_buckets),
        "tick_durations_s": [round(d, 4) for d in durations],
        "tick_max_s": max(durations) if durations else None,
        "ticks_approx": approx,
        "rss_start_mib": round(p0["rss_kib"] / 1024, 1),
        "rss_max_mib": round(rss_max / 1024, 1),
        "rss_end_mib": round(p1["rss_kib"] / 1024, 1),
        "hwm_mib": round(p1["hwm_kib"] / 1024, 1),
        "cpu_s": round(p1["cpu_s"] - p0["cpu_s"], 2),
        "cpu_pct_of_one_core": round(100 * (p1["cpu_s"] - p0["cpu_s"]) / elapsed, 1),
        "source_errors": h1["source_errors"] - h0["source_errors"],
        "prometheus_queries": None if q0 is None else q1 - q0,
        "queries_per_tick": None if q0 is None or not ticks else round((q1 - q0) / ticks, 2),
        "fixture_scrapes": None if f0 is None else f1 - f0,
        "state_changes": g1 - g0,
        "phases": phases,
        "last_verdicts": verdicts,
    }
    print(json.dumps(out))


def cmd_burst(a) -> None:
    h0 = after_tick(a.url)
    p0 = proc(a.pid)
    t0, t0_wall = time.monotonic(), time.time()
    urllib.request.urlopen(urllib.request.Request(f"{a.fixture}/control?canary_errors={a.share}",
                                                  method="POST"), timeout=10).read()
    prev, durations, rss_max = h0, [], p0["rss_kib"]
    done_at = None
    while time.monotonic() - t0 < a.timeout:
        time.sleep(0.5)
        h = tick_histogram(a.url)
        rss_max = max(rss_max, proc(a.pid)["rss_kib"])
        n = int(round(h["count"] - prev["count"]))
        if n == 1:
            durations.append(round(h["sum"] - prev["sum"], 3))
        elif n > 1:  # several ticks ended between two samples: only their total is known
            durations.append(f"{h['sum'] - prev['sum']:.3f} ({n} ticks)")
        prev = h
        if h["rolled_back"] >= a.apps and done_at is None:
            done_at = time.monotonic()
        if done_at is not None and h["count"] > h0["count"] and time.monotonic() - done_at > 1:
            break
    p1 = proc(a.pid)
    ev = json.loads(get(a.url + "/api/v1/events?limit=1000", timeout=60))["events"]
    times = sorted(e["time_ms"] / 1000 - t0_wall for e in ev
                   if e["kind"] == "rolled_back" and e["time_ms"] >= t0_wall * 1000)
    print(json.dumps({
        "share": a.share, "apps": a.apps, "rolled_back": prev["rolled_back"],
        "first_rollback_s": round(times[0], 1) if times else None,
        "last_rollback_s": round(times[-1], 1) if times else None,
        "rollback_events": len(times),
        "tick_durations_s": durations,
        "max_tick_s": max((float(str(d).split()[0]) for d in durations), default=None),
        "cpu_s": round(p1["cpu_s"] - p0["cpu_s"], 2),
        "seconds": round(time.monotonic() - t0, 1),
        "rss_max_mib": round(rss_max / 1024, 1),
        "source_errors": prev["source_errors"] - h0["source_errors"],
    }))


def fmt_s(x) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def cmd_report(a) -> None:
    print("| source | apps | measured | ticks | tick mean | tick p99 (buckets) | tick max (sampled) "
          "| queries to Prometheus / tick | fixture scrapes / tick | VmRSS max (end) | VmHWM | CPU (share of one core) | source errors | state changes | phases at end | last verdicts |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for path in a.results:
        label, r = path.split("=", 1)
        d = json.load(open(r))
        source, apps = label.split(":")
        qpt = "-" if d["queries_per_tick"] is None else f'{d["queries_per_tick"]:.2f} ({d["prometheus_queries"]:.0f} in {d["ticks"]})'
        fpt = "-" if d["fixture_scrapes"] is None or not d["ticks"] else f'{d["fixture_scrapes"] / d["ticks"]:.2f}'
        phases = ", ".join(f"{k} {v}" for k, v in sorted(d["phases"].items()))
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(d["last_verdicts"].items()))
        print(f'| {source} | {apps} | {d["seconds"]:.0f} s | {d["ticks"]} | {fmt_s(d["tick_mean_s"])} | '
              f'{fmt_s(d["tick_p99_s"])} | {fmt_s(d["tick_max_s"])} | {qpt} | {fpt} | '
              f'{d["rss_max_mib"]:.0f} MiB ({d["rss_end_mib"]:.0f}) | {d["hwm_mib"]:.0f} MiB | '
              f'{d["cpu_s"]:.1f} s ({d["cpu_pct_of_one_core"]:.0f} %) | {d["source_errors"]:.0f} | {d["state_changes"]} | {phases} | {verdicts} |')


QUERIES = {  # canary-pilot's default templates (src/analysis/prometheus.rs)
    "requests": 'sum by (service) (increase(traefik_service_requests_total{service=~"{service}"}[{window}]))',
    "errors": 'sum by (service) (increase(traefik_service_requests_total{service=~"{service}",code=~"5.."}[{window}]))',
    "latency": 'sum by (service, le) (increase(traefik_service_request_duration_seconds_bucket{service=~"{service}"}[{window}]))',
}


def cmd_promql_time(a) -> None:
    """Times the three default queries for N apps, as canary-pilot renders them."""
    services = "|".join(f"app{i:04d}-{side}@http" for i in range(1, a.apps + 1) for side in ("stable", "canary"))
    out = {}
    for name, template in QUERIES.items():
        q = template.replace("{service}", services).replace("{window}", a.window)
        body = urllib.parse.urlencode({"query": q}).encode()
        times, series, size = [], 0, 0
        for _ in range(a.reps):
            t = time.monotonic()
            with urllib.request.urlopen(urllib.request.Request(a.prometheus + "/api/v1/query", data=body),
                                        timeout=60) as r:
                raw = r.read()
            times.append(time.monotonic() - t)
            series, size = len(json.loads(raw)["data"]["result"]), len(raw)
        times.sort()
        out[name] = {"median_s": round(times[len(times) // 2], 3), "series": series, "bytes": size}
    print(json.dumps(out))


def cmd_burst_line(a) -> None:
    d = json.load(open(a.file))
    ticks = ", ".join(f"{x:.2f}" if isinstance(x, float) else x for x in d["tick_durations_s"])
    print(f"{d['rollback_events']} rollbacks; the first {d['first_rollback_s']} s after the change, the last "
          f"{d['last_rollback_s']} s after it; ticks meanwhile (s): {ticks}; CPU {d['cpu_s']} s, VmRSS up to "
          f"{d['rss_max_mib']:.0f} MiB, failed collections {d['source_errors']:.0f}.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--url", required=True)
    s.add_argument("--apps", type=int, required=True)
    s.add_argument("--version", default="v2")
    w = sub.add_parser("wait-ticks")
    w.add_argument("--url", required=True)
    w.add_argument("--ticks", type=int, default=2)
    w.add_argument("--timeout", type=float, default=180)
    m = sub.add_parser("measure")
    m.add_argument("--url", required=True)
    m.add_argument("--pid", type=int, required=True)
    m.add_argument("--seconds", type=float, required=True)
    m.add_argument("--every", type=float, default=2.0)
    m.add_argument("--prometheus")
    m.add_argument("--fixture")
    b = sub.add_parser("burst")
    b.add_argument("--url", required=True)
    b.add_argument("--pid", type=int, required=True)
    b.add_argument("--fixture", required=True)
    b.add_argument("--apps", type=int, required=True)
    b.add_argument("--share", type=float, default=0.5)
    b.add_argument("--timeout", type=float, default=240)
    pq = sub.add_parser("promql-time")
    pq.add_argument("--prometheus", required=True)
    pq.add_argument("--apps", type=int, required=True)
    pq.add_argument("--window", default="5000ms")
    pq.add_argument("--reps", type=int, default=3)
    bl = sub.add_parser("burst-line")
    bl.add_argument("file")
    r = sub.add_parser("report")
    r.add_argument("results", nargs="+", help="SOURCE:APPS=FILE.json")
    a = p.parse_args()
    {"start": cmd_start, "wait-ticks": cmd_wait_ticks, "measure": cmd_measure, "burst": cmd_burst, "burst-line": cmd_burst_line,
     "promql-time": cmd_promql_time,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
