#!/usr/bin/env python3
"""Helpers of bench/provider_throughput.sh (Python 3.11 stdlib only).

  wrk_report.py parse WRK_OUTPUT_FILE
      one JSON object: requests/s, latency p50/p75/p90/p99 in ms, requests, errors, non-2xx.
  wrk_report.py report RUN.jsonl
      markdown tables from lines {"apps", "server", "round", "bytes", ...parse output}.
"""
import json
import re
import statistics
import sys

UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNIT[m.group(2)]


def parse(path: str) -> dict:
    text = open(path).read()
    out = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for q in ("50", "75", "90", "99"):
        out[f"p{q}_ms"] = ms(re.search(rf"^\s+{q}%\s+(\S+)", text, re.M).group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text)
    out["requests"] = int(m.group(1))
    out["read"] = m.group(3)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    return out


def report(path: str) -> None:
    runs = [json.loads(l) for l in open(path) if l.strip()]
    apps = list(dict.fromkeys(r["apps"] for r in runs))
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print("| apps | document | server | requests/s (median of rounds) | p50 | p99 | ratio to nginx (requests/s) | errors |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    ratios = {}
    for n in apps:
        by = {s: [r for r in runs if r["apps"] == n and r["server"] == s] for s in ("canary-pilot", "nginx")}
        base = med(by["nginx"], "rps")
        for s, rs in by.items():
            ratio = med(rs, "rps") / base
            if s == "canary-pilot":
                ratios[n] = ratio
            errs = sum(r["socket_errors"] + r["non_2xx"] for r in rs)
            print(f"| {n} | {rs[0]['bytes']:,} B | {s} | {med(rs, 'rps'):,.0f} | {med(rs, 'p50_ms'):.2f} ms "
                  f"| {med(rs, 'p99_ms'):.2f} ms | {ratio:.2f} | {errs} |")
    print("\nEvery round (the order of the two servers alternates between rounds):\n")
    print("| apps | round | server | requests/s | p50 | p99 | requests | read |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['apps']} | {r['round']} | {r['server']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} ms "
              f"| {r['p99_ms']:.2f} ms | {r['requests']:,} | {r['read']} |")
    print("\nRATIOS " + json.dumps(ratios), file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "parse":
        print(json.dumps(parse(sys.argv[2])))
    elif sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
