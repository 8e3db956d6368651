#!/usr/bin/env python3
"""Driver of bench/fault_to_zero.sh (Python 3.11 stdlib only): repeated releases whose canary
turns bad, timing fault -> zero canary traffic.

  fault_probe.py run --pilot URL --traefik-api URL --canary-control URL --traffic-log FILE
                     --reps N [--first-rep 1] [--seed S] [--hold 0.5:3.5] [--quiet 2] [--timeout 60]
                     --source NAME
      prints one JSON object per repetition.
  fault_probe.py report FILE.jsonl...      markdown tables (per source summary, every repetition)

One repetition:
 1. the canary backend answers well (PUT /_control {"error_rate": 0}); POST .../start starts a
    release at the first step (10 %);
 2. wait until Traefik's API (/api/http/services/api@http) shows the canary at 10 % and the
    traffic shows canary answers for 1 s, then a random hold (--hold, seconds);
 3. check the release is still progressing at 10 % (else the repetition is discarded);
 4. t0: PUT /_control {"error_rate": 1.0} on the canary backend: it fails every request;
 5. poll every 50 ms Traefik's API, canary-pilot's API and the traffic generator's report lines
    (canary-pilot demo-traffic --report 100ms, each line timestamped on arrival) until Traefik shows
    the canary at 0 and no canary answer arrived for --quiet seconds.
Measured from t0: the last report window with a canary answer (its end, so within 0.1 s above
the last canary answer), Traefik's API showing weight 0, the rolled_back event's time; failed client
requests (5xx or transport errors in the report lines after t0; before t0 nothing fails) and the
canary backend's own error count over the same time.
"""
import argparse
import json
import random
import re
import statistics
import sys
import threading
import time
import urllib.request

LINE = re.compile(r"(\S+) (\d+) \((\d+) err\)")


def http(method: str, url: str, body=None, timeout: float = 5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class TrafficTail:
    """Reads demo-traffic's report lines as they are written; keeps (arrival, counts by
    version, errors)."""

    def __init__(self, path: str):
        self.f = open(path, "r")
        self.f.seek(0, 2)  # from the end: only what comes from now on
        self.lines: list[tuple[float, dict[str, int], int]] = []
        self.lock = threading.Lock()
        self.stop = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self) -> None:
        buf = ""
        while not self.stop:
            chunk = self.f.read()
            now = time.monotonic()
            if not chunk:
                time.sleep(0.01)
                continue
            buf += chunk
            *done, buf = buf.split("\n")
            for line in done:
                if not line.startswith("t="):
                    continue
                counts, errors = {}, 0
                for v, n, e in LINE.findall(line):
                    counts[v] = counts.get(v, 0) + int(n)
                    errors += int(e)
                with self.lock:
                    self.lines.append((now, counts, errors))

    def since(self, t: float) -> list[tuple[float, dict[str, int], int]]:
        with self.lock:
            return [x for x in self.lines if x[0] > t]


def canary_weight(traefik_api: str) -> int | None:
    try:
        status, svc = http("GET", traefik_api + "/api/http/services/api@http", timeout=2)
    except OSError:
        return None
    if status != 200:
        return None
    for s in svc.get("weighted", {}).get("services", []):
        if s["name"].startswith("api-canary"):
            return s.get("weight", 0)
    return 0


def run(a) -> None:
    rng = random.Random(a.seed)
    hold_lo, hold_hi = (float(x) for x in a.hold.split(":"))
    tail = TrafficTail(a.traffic_log)
    control = a.canary_control + "/_control"
    done = 0
    attempts = 0
    while done < a.reps and attempts < a.reps + 5:
        attempts += 1
        rec = {"source": a.source, "rep": a.first_rep + done}
        http("PUT", control, {"error_rate": 0.0})
        status, body = http("POST", a.pilot + "/api/v1/apps/api/start", {"version": "v2"})
        if status != 200:
            sys.exit(f"start refused: {status} {body}")
        t_start = time.monotonic()
        while canary_weight(a.traefik_api) != 10:
            if time.monotonic() - t_start > 20:
                sys.exit("Traefik did not show the canary at 10 % within 20 s")
            time.sleep(0.05)
        t_applied = time.monotonic()
        rec["start_to_traefik_10_s"] = round(t_applied - t_start, 2)
        time.sleep(1.0)
        seen = sum(c.get(a.canary_version, 0) for _, c, _ in tail.since(t_applied))
        if seen == 0:
            sys.exit("no canary answers in the traffic 1 s after Traefik showed 10 %")
        time.sleep(rng.uniform(hold_lo, hold_hi))
        _, app = http("GET", a.pilot + "/api/v1/apps/api")
        if app["phase"] != "progressing" or app["weights"]["canary"] != 10:
            rec["discarded"] = f"phase {app['phase']} at {app['weights']['canary']} % before the fault"
            print(json.dumps(rec), flush=True)
            http("POST", a.pilot + "/api/v1/apps/api/abort", {"reason": "benchmark: discarded"})
            time.sleep(4)
            continue
        _, c0 = http("GET", control)
        rec["good_canary_answers_before_t0"] = sum(c.get(a.canary_version, 0) for _, c, _ in tail.since(t_applied))
        t0, t0_wall = time.monotonic(), time.time()
        http("PUT", control, {"error_rate": 1.0})
        t_zero = t_rolled = None
        deadline = t0 + a.timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            if t_zero is None and canary_weight(a.traefik_api) == 0:
                t_zero = now
            if t_rolled is None:
                _, app = http("GET", a.pilot + "/api/v1/apps/api")
                if app["phase"] == "rolled_back":
                    t_rolled = now
            lines = tail.since(t0)
            last_canary = max((t for t, c, _ in lines if c.get(a.canary_version, 0) > 0), default=t0)
            if t_zero is not None and now - max(t_zero, last_canary) >= a.quiet:
                break
            time.sleep(0.05)
        else:
            rec["timeout"] = a.timeout
        _, c1 = http("GET", control)
        lines = tail.since(t0)
        canary_lines = [t for t, c, _ in lines if c.get(a.canary_version, 0) > 0]
        rec["last_canary_answer_s"] = round(max(canary_lines) - t0, 2) if canary_lines else 0.0
        rec["traefik_weight_0_s"] = None if t_zero is None else round(t_zero - t0, 2)
        rec["rolled_back_seen_s"] = None if t_rolled is None else round(t_rolled - t0, 2)
        _, ev = http("GET", a.pilot + "/api/v1/events?app=api&limit=20")
        after = [e for e in ev["events"] if e["time_ms"] >= t0_wall * 1000]
        rec["events_after_t0"] = [f"{e['kind']} {e['time_ms'] / 1000 - t0_wall:.2f}s" for e in after]
        rb = [e for e in after if e["kind"] == "rolled_back"]
        rec["rolled_back_event_s"] = round(rb[0]["time_ms"] / 1000 - t0_wall, 2) if rb else None
        rec["failed_client_requests"] = sum(e for _, _, e in lines)
        rec["client_requests_after_t0"] = sum(sum(c.values()) for _, c, _ in lines)
        rec["canary_backend_errors"] = c1["errors"] - c0["errors"]
        _, detail = http("GET", a.pilot + "/api/v1/apps/api")
        last = (detail.get("analyses") or [{}])[0]
        rec["deciding_window"] = {k: last.get(k) for k in
                                  ("verdict", "canary_requests", "stable_requests", "window_seconds")}
        rec["reason"] = (rb[0]["reason"] if rb else last.get("reason", ""))[:200]
        print(json.dumps(rec), flush=True)
        done += 1
        http("PUT", control, {"error_rate": 0.0})
        time.sleep(1.0)
    tail.stop = True
    if done < a.reps:
        sys.exit(f"only {done} valid repetitions out of {attempts}")


def summary(vals: list[float]) -> tuple[str, str]:
    if not vals:
        return "-", "-"
    return f"{statistics.median(vals):g}", f"{max(vals):g}"


def report(a) -> None:
    recs = []
    for path in a.files:
        recs += [json.loads(l) for l in open(path) if l.strip()]
    valid = [r for r in recs if "discarded" not in r]
    sources = list(dict.fromkeys(r["source"] for r in valid))
    print("| source | reps | fault → last canary answer (median / max) | fault → Traefik shows canary 0 % "
          "| fault → rolled_back event | failed client requests (median / max) | canary backend errors (median / max) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in sources:
        rs = [r for r in valid if r["source"] == s]
        col = lambda k: [r[k] for r in rs if r.get(k) is not None]
        cells = [" / ".join(f"{x} s" for x in summary(col(k))) for k in
                 ("last_canary_answer_s", "traefik_weight_0_s", "rolled_back_event_s")]
        cells += [" / ".join(summary(col(k))) for k in ("failed_client_requests", "canary_backend_errors")]
        print(f"| {s} | {len(rs)} | " + " | ".join(cells) + " |")
    dis = [r for r in recs if "discarded" in r]
    if dis:
        print(f"\nDiscarded repetitions (not at 10 % when the fault was to start): {len(dis)}: "
              + "; ".join(f"{r['source']}: {r['discarded']}" for r in dis))
    print("\nEvery repetition (seconds from the fault):\n")
    print("| source | rep | start → Traefik at 10 % | good canary answers before the fault | last canary answer "
          "| Traefik at 0 % | rolled_back event | failed client requests | canary backend errors "
          "| events after the fault | deciding window: verdict, canary / stable requests, length |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in valid:
        w = r["deciding_window"]
        win = (f"{w['verdict']}, {w['canary_requests']:.0f} / {w['stable_requests']:.0f}, {w['window_seconds']:.1f} s"
               if w.get("canary_requests") is not None else "-")
        print(f"| {r['source']} | {r['rep']} | {r['start_to_traefik_10_s']} | {r['good_canary_answers_before_t0']} "
              f"| {r['last_canary_answer_s']} | {r['traefik_weight_0_s']} | {r['rolled_back_event_s']} "
              f"| {r['failed_client_requests']} | {r['canary_backend_errors']} "
              f"| {', '.join(r.get('events_after_t0', []))} | {win} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--pilot", required=True)
    r.add_argument("--traefik-api", required=True)
    r.add_argument("--canary-control", required=True)
    r.add_argument("--canary-version", default="v2")
    r.add_argument("--traffic-log", required=True)
    r.add_argument("--reps", type=int, default=10)
    r.add_argument("--first-rep", type=int, default=1, help="number of the first repetition")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--hold", default="0.5:3.5")
    r.add_argument("--quiet", type=float, default=2.0)
    r.add_argument("--timeout", type=float, default=60.0)
    r.add_argument("--source", required=True)
    s = sub.add_parser("report")
    s.add_argument("files", nargs="+")
    a = p.parse_args()
    run(a) if a.cmd == "run" else report(a)


if __name__ == "__main__":
    main()
