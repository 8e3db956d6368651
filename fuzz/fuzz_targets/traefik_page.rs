//! The Traefik `/metrics` page parser on any text: it never panics; the page read at once and
//! the page read in chunks (as it arrives from the network) are the same page; counted from
//! zero, every figure is finite and non-negative with errors never above requests; a page
//! against itself increases nothing; histogram quantiles stay within the buckets' bounds.
#![no_main]

use canary_pilot::analysis::scrape::{increases, page_increases, parse_page, Page, PageParser};
use canary_pilot::analysis::{Collected, SideSample};
use libfuzzer_sys::fuzz_target;

/// The services the page names (every `service="..."` value, read naively), plus two that
/// real pages have, so that the parser keeps their series.
fn services(text: &str) -> Vec<String> {
    let mut out = vec!["app-stable@http".to_string(), "app-canary@http".to_string()];
    for piece in text.split("service=\"").skip(1).take(64) {
        if let Some(end) = piece.find('"') {
            out.push(piece[..end].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn check_side(service: &str, side: &SideSample, counted_from_zero: bool) {
    let ok = |x: f64| x.is_finite() && x >= 0.0;
    // Sums of finite counters may overflow to +Inf; they never turn negative or NaN.
    let sane = |x: f64| !x.is_nan() && x >= 0.0;
    assert!(sane(side.requests), "{service}: {side:?}");
    assert!(sane(side.errors), "{service}: {side:?}");
    if counted_from_zero {
        assert!(side.errors <= side.requests, "{service}: {side:?}");
    }
    let mut top = 0.0f64;
    for (le, count) in side.latency.buckets() {
        assert!(!le.is_nan() && le >= 0.0, "{service}: bound {le}");
        assert!(sane(count), "{service}: bucket {le} counts {count}");
        if le.is_finite() {
            top = top.max(le);
        }
    }
    for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
        if let Some(x) = side.latency.quantile(q) {
            assert!(
                ok(x) && x <= top,
                "{service}: q{q} = {x} above {top}: {side:?}"
            );
        }
    }
}

fn check_zero(service: &str, side: &SideSample) {
    assert_eq!(side.requests, 0.0, "{service}: {side:?}");
    assert_eq!(side.errors, 0.0, "{service}: {side:?}");
    assert!(
        side.latency.buckets().all(|(_, c)| c == 0.0),
        "{service}: {side:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let services = services(text);
    let whole = parse_page(text, &services);

    // In chunks, cut where the network may cut: anywhere, even inside a UTF-8 character.
    let step = 1 + data.first().map_or(0, |b| *b as usize % 97);
    let mut parser = PageParser::new(&services);
    for chunk in data.chunks(step) {
        parser.feed(chunk);
    }
    let chunked = parser.finish();

    let (page, chunked): (Page, Page) = match (whole, chunked) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            return;
        }
        (a, b) => panic!("at once {a:?}, in chunks of {step} {b:?}"),
    };
    assert_eq!(page.len(), chunked.len());

    let zero = Page::zero(&services);
    let from_zero: Collected = increases(&zero, &page).expect("nothing goes down from zero");
    let chunked_from_zero = increases(&zero, &chunked).expect("nothing goes down from zero");
    assert_eq!(from_zero, chunked_from_zero, "chunks of {step}");
    for (service, side) in &from_zero {
        assert!(services.contains(service), "{service} was not asked for");
        check_side(service, side, true);
    }

    // The same page twice: nothing happened in between, whichever way it is compared.
    for (service, side) in increases(&page, &page).expect("a page against itself") {
        check_zero(&service, &side);
    }
    for (service, side) in page_increases(&page, 0.0, &page).expect("a page against itself") {
        check_zero(&service, &side);
    }
});
