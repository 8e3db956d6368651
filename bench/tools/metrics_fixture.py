#!/usr/bin/env python3
"""A stand-in for Traefik's /metrics with the services of N apps (<app>-stable@http and
<app>-canary@http for app0001..appNNNN), in Traefik 3.7's exposition format: per service
traefik_service_requests_total by code and traefik_service_request_duration_seconds histograms
(the demo's buckets) by code. Counters grow with time: per app, stable --stable-rps requests/s
without errors, canary --canary-rps requests/s of which a share --canary-errors are 500s; both
sides have the same latency distribution (p99 inside a bucket, not on a bound). Every app has the
same figures. With the defaults (canary 100 requests/s, 1 % errors) the canary's error counter
steps every second, so Prometheus' increase() sees it in every window, and the canary's error
ratio sits at the default tolerance (1 %): the judge computes every check and stays inconclusive.

The page is rendered when it is asked for and is older than a second (scrapes within the same
second get the same bytes), so the fixture spends no CPU between scrapes: on a machine it
shares with the controller and Prometheus, it takes as little of it as it can.

  metrics_fixture.py --listen 127.0.0.1:9100 --apps 1000
GET /metrics: the page; GET /stats: {"pages", "scrapes", "bytes", "apps", "canary_errors"};
POST /control?canary_errors=0.5: the canary's error share from now on (counters stay monotonic).
"""
import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.3", "0.5",
           "0.75", "1", "2.5", "5", "+Inf"]
# Cumulative share of requests at or below each bucket bound (same for both sides).
CUMULATIVE = [0.05, 0.2, 0.6, 0.9, 0.96, 0.98, 0.995, 0.999, 1, 1, 1, 1, 1, 1, 1]
MEAN_SECONDS = 0.02
LABELS = 'method="GET",protocol="http",service="@S@"'


def series(code: str, n: int) -> tuple[str, str]:
    """(requests_total line, histogram lines) for one code and count, service as @S@."""
    req = f'traefik_service_requests_total{{code="{code}",{LABELS}}} {n}\n'
    hist = "".join(
        f'traefik_service_request_duration_seconds_bucket{{code="{code}",{LABELS},le="{le}"}} {int(n * f)}\n'
        for le, f in zip(BUCKETS, CUMULATIVE)
    )
    hist += f'traefik_service_request_duration_seconds_sum{{code="{code}",{LABELS}}} {n * MEAN_SECONDS:.3f}\n'
    hist += f'traefik_service_request_duration_seconds_count{{code="{code}",{LABELS}}} {n}\n'
    return req, hist


class Fixture:
    def __init__(self, apps: int, stable_rps: float, canary_rps: float, canary_errors: float):
        self.apps = [f"app{i:04d}" for i in range(1, apps + 1)]
        self.stable_rps, self.canary_rps, self.canary_errors = stable_rps, canary_rps, canary_errors
        # Counters do not start at 0: as if Traefik had been running for 1,000 s.
        self.stable = stable_rps * 1000.0
        self.canary_ok = canary_rps * (1 - canary_errors) * 1000.0
        self.canary_err = canary_rps * canary_errors * 1000.0
        self.last = time.monotonic()
        self.page = b""
        self.pages = 0
        self.scrapes = 0
        self.lock = threading.Lock()
        self.render_lock = threading.Lock()
        self.render()

    def render(self) -> None:
        now = time.monotonic()
        with self.lock:
            dt, self.last = now - self.last, now
            self.stable += self.stable_rps * dt
            self.canary_ok += self.canary_rps * (1 - self.canary_errors) * dt
            self.canary_err += self.canary_rps * self.canary_errors * dt
            ns, nok, ne = int(self.stable), int(self.canary_ok), int(self.canary_err)
        s_req, s_hist = series("200", ns)
        c_req_ok, c_hist_ok = series("200", nok)
        c_req_err, c_hist_err = series("500", ne)
        req_parts = [
            "# HELP traefik_service_requests_total How many HTTP requests processed on a service, partitioned by status code, protocol, and method.\n"
            "# TYPE traefik_service_requests_total counter\n"
        ]
        hist_parts = [
            "# HELP traefik_service_request_duration_seconds How long it took to process the request on a service, partitioned by status code, protocol, and method.\n"
            "# TYPE traefik_service_request_duration_seconds histogram\n"
        ]
        for app in self.apps:
            stable, canary = f"{app}-stable@http", f"{app}-canary@http"
            req_parts.append(s_req.replace("@S@", stable))
            req_parts.append(c_req_ok.replace("@S@", canary))
            req_parts.append(c_req_err.replace("@S@", canary))
            hist_parts.append(s_hist.replace("@S@", stable))
            hist_parts.append(c_hist_ok.replace("@S@", canary))
            hist_parts.append(c_hist_err.replace("@S@", canary))
        page = ("".join(req_parts) + "".join(hist_parts)).encode()
        with self.lock:
            self.page = page
            self.pages += 1

    def set_errors(self, share: float) -> None:
        with self.render_lock:
            self.render()  # counters up to now at the old share
            with self.lock:
                self.canary_errors = share

    def current(self) -> bytes:
        """The page, rendered first when it is a second old or more."""
        with self.render_lock:
            if time.monotonic() - self.last >= 1.0:
                self.render()
        with self.lock:
            self.scrapes += 1
            return self.page


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", required=True, help="IP:PORT")
    p.add_argument("--apps", type=int, required=True)
    p.add_argument("--stable-rps", type=float, default=900.0)
    p.add_argument("--canary-rps", type=float, default=100.0)
    p.add_argument("--canary-errors", type=float, default=0.01)
    a = p.parse_args()
    fx = Fixture(a.apps, a.stable_rps, a.canary_rps, a.canary_errors)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/metrics":
                body = fx.current()
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/stats":
                with fx.lock:
                    body = json.dumps({"pages": fx.pages, "scrapes": fx.scrapes, "bytes": len(fx.page),
                                       "apps": len(fx.apps), "canary_errors": fx.canary_errors}).encode()
                ctype = "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            m = re.fullmatch(r"/control\?canary_errors=([0-9.]+)", self.path)
            if not m or not 0 <= float(m.group(1)) <= 1:
                self.send_error(400)
                return
            fx.set_errors(float(m.group(1)))
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    host, port = a.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
