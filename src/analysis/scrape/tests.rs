use std::sync::{Arc, Mutex as StdMutex};

use super::*;

const FIXTURE: &str = include_str!("../../../tests/fixtures/traefik-3.7.15-metrics.txt");

fn wanted() -> Vec<String> {
    vec!["app-stable@http".into(), "app-canary@http".into()]
}

/// A page with the given cumulative counts for one service (all requests in the 0.01 bucket,
/// errors as code 500).
fn page(service: &str, ok: u64, errors: u64) -> String {
    let mut s = String::from(
        "# TYPE traefik_service_requests_total counter\n# TYPE traefik_service_request_duration_seconds histogram\n",
    );
    for (code, n) in [("200", ok), ("500", errors)] {
        if n == 0 {
            continue;
        }
        s.push_str(&format!(
            "traefik_service_requests_total{{code=\"{code}\",method=\"GET\",protocol=\"http\",service=\"{service}\"}} {n}\n"
        ));
        for le in ["0.005", "0.01", "+Inf"] {
            let v = if le == "0.005" { 0 } else { n };
            s.push_str(&format!(
                "traefik_service_request_duration_seconds_bucket{{code=\"{code}\",method=\"GET\",protocol=\"http\",service=\"{service}\",le=\"{le}\"}} {v}\n"
            ));
        }
    }
    s
}

#[test]
fn fixture_page_sums_requests_errors_and_buckets_per_service() {
    let cur = parse_page(FIXTURE, &wanted()).unwrap();
    let got = increases(&Page::zero(&wanted()), &cur).unwrap();
    let canary = &got["app-canary@http"];
    assert_eq!(canary.requests, 1543.0 + 173.0);
    assert_eq!(canary.errors, 173.0);
    let stable = &got["app-stable@http"];
    assert_eq!(stable.requests, 18441.0 + 142.0 + 18.0);
    assert_eq!(stable.errors, 142.0 + 18.0);
    // The +Inf bucket holds every request.
    let inf = canary.latency.buckets().last().unwrap();
    assert_eq!(inf, (f64::INFINITY, canary.requests));
    assert!(canary.latency.quantile(0.99).unwrap() > 0.05);
}

#[test]
fn unwanted_services_are_left_out() {
    let only = ["app-canary@http".to_string()];
    let cur = parse_page(FIXTURE, &only).unwrap();
    let got = increases(&Page::zero(&only), &cur).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["app-canary@http"]);
}

#[test]
fn increases_between_pages_handle_growth_reset_and_new_series() {
    let svc = "app-canary@http";
    let p1 = parse_page(&page(svc, 100, 0), &wanted()).unwrap();
    let p2 = parse_page(&page(svc, 150, 5), &wanted()).unwrap();
    let d = &increases(&p1, &p2).unwrap()[svc];
    assert_eq!(
        (d.requests, d.errors),
        (55.0, 5.0),
        "growth, and a 500 series that is new"
    );

    // Down without a way to tell a restart: not evidence.
    let p3 = parse_page(&page(svc, 7, 1), &wanted()).unwrap();
    let e = page_increases(&p2, 0.0, &p3).unwrap_err();
    assert!(e.contains("no process_start_time_seconds"), "{e}");
}

/// `page` with the process start time Traefik publishes.
fn page_of_process(start: f64, service: &str, ok: u64, errors: u64) -> Page {
    let text = format!(
        "process_start_time_seconds {start}\n{}",
        page(service, ok, errors)
    );
    parse_page(&text, &wanted()).unwrap()
}

#[test]
fn a_traefik_restart_counts_the_new_process_counters_from_zero() {
    let svc = "app-canary@http";
    let before = page_of_process(1000.0, svc, 100, 0);
    // Started at 1100, after the previous page was read at 1050.
    let after = page_of_process(1100.0, svc, 150, 3);
    let d = &page_increases(&before, 1050.0, &after).unwrap()[svc];
    assert_eq!((d.requests, d.errors), (153.0, 3.0));
}

#[test]
fn counters_that_go_down_in_the_same_process_are_not_evidence() {
    let svc = "app-canary@http";
    let a = page_of_process(1000.0, svc, 100, 0);
    let b = page_of_process(1000.0, svc, 40, 0);
    let e = page_increases(&a, 1050.0, &b).unwrap_err();
    assert!(
        e.contains("went down") && e.contains("more than one Traefik replica"),
        "{e}"
    );
}

#[test]
fn two_replicas_behind_one_url_give_no_phantom_traffic() {
    let svc = "app-canary@http";
    // Replica A started at 1000 and has served 5,000 requests; B started at 1010 and 50. Pages
    // alternate between them, read every second from 2000 on.
    let a = |n: u64| page_of_process(1000.0, svc, 5000 + n, 0);
    let b = |n: u64| page_of_process(1010.0, svc, 50 + n, 0);
    let pages = [a(0), b(1), a(2), b(3), a(4), b(5)];
    for (i, pair) in pages.windows(2).enumerate() {
        let e = page_increases(&pair[0], 2000.0 + i as f64, &pair[1]).unwrap_err();
        assert!(e.contains("another Traefik process"), "{i}: {e}");
    }
}

#[test]
fn a_series_that_vanishes_and_returns_counts_from_zero() {
    let svc = "app-canary@http";
    let with = parse_page(&page(svc, 500, 0), &wanted()).unwrap();
    let without = parse_page(&page("other@http", 1, 0), &wanted()).unwrap();
    let back = parse_page(&page(svc, 12, 0), &wanted()).unwrap();
    assert!(increases(&with, &without).unwrap().is_empty());
    assert_eq!(increases(&without, &back).unwrap()[svc].requests, 12.0);
}

#[test]
fn garbage_and_truncated_pages_do_not_panic_and_yield_nothing_wrong() {
    for text in [
        "",
        "garbage\n\u{0}\u{1}{{{}}}}",
        "traefik_service_requests_total{code=\"200\",service=\"app-canary@http\"",
        "traefik_service_requests_total{code=\"200\",service=\"app-canary@http\"} notanumber",
        &FIXTURE[..FIXTURE.len() / 2],
        &"x".repeat(100_000),
    ] {
        let page = parse_page(text, &wanted()).unwrap_or_default();
        let got = increases(&Page::zero(&wanted()), &page).unwrap();
        for side in got.values() {
            assert!(side.requests >= 0.0 && side.errors <= side.requests);
        }
    }
}

/// A tiny HTTP server whose `/metrics` page the test sets.
async fn serve_page(page: Arc<StdMutex<(u16, String)>>) -> Url {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let page = page.clone();
            async move {
                let (status, body) = page.lock().unwrap().clone();
                (axum::http::StatusCode::from_u16(status).unwrap(), body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Url::parse(&format!("http://{addr}/metrics")).unwrap()
}

#[tokio::test]
async fn source_sums_replicas_uses_first_scrape_as_baseline_and_reports_failures() {
    let svc = "app-canary@http";
    let a = Arc::new(StdMutex::new((200, page(svc, 1000, 10))));
    let b = Arc::new(StdMutex::new((200, page(svc, 50, 0))));
    let source = TraefikScrape::new(
        vec![serve_page(a.clone()).await, serve_page(b.clone()).await],
        Duration::from_secs(2),
    );
    let w = wanted();
    let first = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert!(
        first.is_empty(),
        "the first scrape is a baseline: {first:?}"
    );

    *a.lock().unwrap() = (200, page(svc, 1100, 12));
    *b.lock().unwrap() = (200, page(svc, 80, 1));
    let got = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        (got[svc].requests, got[svc].errors),
        (100.0 + 2.0 + 30.0 + 1.0, 3.0)
    );

    // One replica fails: the collection is an error naming it.
    *b.lock().unwrap() = (500, "oops".into());
    let err = source
        .collect(&w, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Unreachable(ref m) if m.contains("HTTP 500")),
        "{err}"
    );

    // It comes back: its first page is a new baseline, the other replica counts on.
    *a.lock().unwrap() = (200, page(svc, 1200, 12));
    *b.lock().unwrap() = (200, page(svc, 90, 1));
    let got = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[svc].requests, 100.0);
}

#[tokio::test]
async fn oversized_page_is_refused() {
    let huge = format!("# {}\n", "x".repeat(MAX_PAGE_BYTES + 1));
    let p = Arc::new(StdMutex::new((200, huge)));
    let source = TraefikScrape::new(vec![serve_page(p).await], Duration::from_secs(5));
    let err = source
        .collect(&wanted(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::Invalid(ref m) if m.contains("larger than")),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_url_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = TraefikScrape::new(
        vec![Url::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap()],
        Duration::from_secs(1),
    );
    let err = source
        .collect(&wanted(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Unreachable(_)), "{err}");
}

#[test]
fn negative_and_non_finite_counters_are_left_out() {
    let text = "traefik_service_requests_total{code=\"200\",service=\"app-canary@http\"} -7\n\
                traefik_service_requests_total{code=\"500\",service=\"app-canary@http\"} NaN\n\
                traefik_service_requests_total{code=\"502\",service=\"app-canary@http\"} +Inf\n\
                traefik_service_requests_total{code=\"200\",service=\"app-stable@http\"} 4\n";
    let got = increases(
        &Page::zero(&wanted()),
        &parse_page(text, &wanted()).unwrap(),
    )
    .unwrap();
    assert!(!got.contains_key("app-canary@http"), "{got:?}");
    assert_eq!(got["app-stable@http"].requests, 4.0);
}

#[test]
fn a_service_asked_for_the_first_time_is_only_a_baseline() {
    let (canary, stable) = ("app-canary@http".to_string(), "app-stable@http".to_string());
    let text = format!("{}{}", page(&canary, 100, 1), page(&stable, 900, 0));
    let before = parse_page(&text, std::slice::from_ref(&canary)).unwrap();
    let text = format!("{}{}", page(&canary, 110, 1), page(&stable, 990, 0));
    let after = parse_page(&text, &[canary.clone(), stable.clone()]).unwrap();
    let got = increases(&before, &after).unwrap();
    assert_eq!(got[&canary].requests, 10.0);
    // Not 990: stable's counters were not read before, so this page is its baseline.
    assert!(!got.contains_key(&stable), "{got:?}");
}

#[test]
fn labels_in_any_order_escapes_and_timestamps_are_understood() {
    let svc = "app-canary@http";
    let p1 = parse_page(
        "traefik_service_requests_total{code=\"500\",method=\"GET\",service=\"app-canary@http\"} 4 1700000000000\n\
         traefik_service_requests_total{code=\"200\",method=\"a\\\"b\\\\c\",service=\"app-canary@http\",} 10\n",
        &wanted(),
    )
    .unwrap();
    let p2 = parse_page(
        "traefik_service_requests_total{service=\"app-canary@http\",method=\"GET\",code=\"500\"} 6\n\
         traefik_service_requests_total { service = \"app-canary@http\" , code=\"200\",method=\"a\\\"b\\\\c\"} 15\n",
        &wanted(),
    )
    .unwrap();
    assert_eq!(p1.len(), 2);
    let d = &increases(&p1, &p2).unwrap()[svc];
    assert_eq!((d.requests, d.errors), (7.0, 2.0));
}

#[test]
fn a_page_that_is_not_traefiks_metrics_is_an_error() {
    for text in ["<html><body>Not found</body></html>\n", "", "\n \n"] {
        let err = parse_page(text, &wanted()).unwrap_err();
        assert!(
            err.to_string().contains("no traefik_ metric"),
            "{text:?}: {err}"
        );
    }
    // A Traefik with no service traffic yet is a valid, empty page.
    let page = parse_page("traefik_config_reloads_total 1\n", &wanted()).unwrap();
    assert!(page.is_empty());
}

#[test]
fn a_page_read_in_pieces_of_any_size_parses_as_a_whole() {
    let whole = increases(
        &Page::zero(&wanted()),
        &parse_page(FIXTURE, &wanted()).unwrap(),
    )
    .unwrap();
    for piece in [1, 7, 100, 4096] {
        let mut parser = PageParser::new(&wanted());
        for chunk in FIXTURE.as_bytes().chunks(piece) {
            parser.feed(chunk);
        }
        let page = parser.finish().unwrap();
        assert_eq!(
            increases(&Page::zero(&wanted()), &page).unwrap(),
            whole,
            "pieces of {piece}"
        );
    }
}

#[test]
fn a_series_listed_twice_counts_once_with_its_last_value() {
    let text = "traefik_service_requests_total{code=\"200\",service=\"app-canary@http\"} 5\n\
                traefik_service_requests_total{code=\"200\",service=\"app-canary@http\"} 9\n";
    let page = parse_page(text, &wanted()).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        increases(&Page::zero(&wanted()), &page).unwrap()["app-canary@http"].requests,
        9.0
    );
}

#[test]
fn series_that_moved_on_the_page_and_crlf_line_ends_are_matched() {
    let svc = "app-canary@http";
    let line = |code: u32, n: u64| {
        format!("traefik_service_requests_total{{code=\"{code}\",service=\"{svc}\"}} {n}\r\n")
    };
    // 300 codes, then the same with a new code in front: every series moved one place.
    let first: String = (400..700).map(|c| line(c, 10)).collect();
    let second: String = std::iter::once(line(399, 4))
        .chain((400..700).map(|c| line(c, 11)))
        .collect();
    let p1 = parse_page(&first, &wanted()).unwrap();
    let mut parser = PageParser::new(&wanted());
    // Pieces that cut between \r and \n.
    for chunk in second.as_bytes().chunks(61) {
        parser.feed(chunk);
    }
    let p2 = parser.finish().unwrap();
    assert_eq!((p1.len(), p2.len()), (300, 301));
    let d = &increases(&p1, &p2).unwrap()[svc];
    // 300 series grew by 1 (100 of them 5xx); the new one counts from 0.
    assert_eq!(d.requests, 304.0);
    assert_eq!(d.errors, 100.0);
}

#[tokio::test]
async fn a_password_in_a_metrics_url_is_in_no_error_and_no_description() {
    let url: Url = "http://user:s3cret@127.0.0.1:1/metrics".parse().unwrap();
    let source = TraefikScrape::new(vec![url], Duration::from_millis(500));
    let e = source
        .collect(&wanted(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(e.to_string().contains("user:***@127.0.0.1:1"), "{e}");
    assert!(
        !source.describe().contains("s3cret"),
        "{}",
        source.describe()
    );
}

#[test]
fn a_page_with_more_series_than_any_traefik_has_is_refused_not_kept() {
    let mut text = page("app-canary@http", 10, 0);
    // One series per distinct method label: cardinality no real Traefik has.
    for i in 0..=MAX_SERIES {
        text.push_str(&format!(
            "traefik_service_requests_total{{code=\"200\",method=\"M{i}\",protocol=\"http\",service=\"app-canary@http\"}} 1\n"
        ));
    }
    let err = parse_page(&text, &wanted()).unwrap_err();
    assert!(
        matches!(&err, SourceError::Invalid(why) if why.contains("more than 50000 series")),
        "{err:?}"
    );
    // At the limit, the page is fine.
    let mut text = page("app-canary@http", 10, 0);
    for i in 0..(MAX_SERIES - 4) {
        text.push_str(&format!(
            "traefik_service_requests_total{{code=\"200\",method=\"M{i}\",protocol=\"http\",service=\"app-canary@http\"}} 1\n"
        ));
    }
    assert_eq!(parse_page(&text, &wanted()).unwrap().len(), MAX_SERIES);
}

#[tokio::test]
async fn replicas_that_come_and_go_are_neither_resets_nor_phantom_traffic() {
    let svc = "app-canary@http";
    let a = Arc::new(StdMutex::new((200, page(svc, 1000, 0))));
    let b = Arc::new(StdMutex::new((200, page(svc, 5000, 0))));
    let (url_a, url_b) = (serve_page(a.clone()).await, serve_page(b.clone()).await);
    let source = TraefikScrape::new(vec![url_a.clone()], Duration::from_secs(2));
    let w = wanted();
    assert!(source
        .collect(&w, Duration::from_secs(1))
        .await
        .unwrap()
        .is_empty());

    // A second replica appears: its counters so far are its baseline, not new traffic.
    *a.lock().unwrap() = (200, page(svc, 1100, 0));
    source.set_targets(&[url_a.clone(), url_b.clone()]);
    let got = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[svc].requests, 100.0, "only the kept replica's increase");
    assert!(
        source.describe().contains(url_b.as_str()),
        "{}",
        source.describe()
    );

    *a.lock().unwrap() = (200, page(svc, 1150, 0));
    *b.lock().unwrap() = (200, page(svc, 5020, 0));
    let got = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[svc].requests, 70.0, "both replicas counted");

    // The first goes away: the other counts on from its own baseline; nothing goes negative.
    *b.lock().unwrap() = (200, page(svc, 5030, 0));
    source.set_targets(std::slice::from_ref(&url_b));
    let got = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[svc].requests, 10.0);

    // It comes back (a new task at the same address, counters from 0): a baseline again.
    *a.lock().unwrap() = (200, page(svc, 3, 0));
    *b.lock().unwrap() = (200, page(svc, 5040, 0));
    source.set_targets(&[url_a, url_b]);
    let got = source.collect(&w, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got[svc].requests, 10.0);

    // No replica at all is an error that says so, not an empty window.
    source.set_targets(&[]);
    let err = source
        .collect(&w, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no Traefik replica"), "{err}");
}
