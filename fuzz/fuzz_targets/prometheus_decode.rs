//! The Prometheus `/api/v1/query` answer decoder on any bytes: it never panics; a refusal is a
//! `SourceError::Invalid` that says why (never `Unreachable`: the source answered); an accepted
//! answer is exactly the instant vector the JSON holds (same items, same order, same labels,
//! the values as Prometheus writes them, NaN and ±Inf included); and the samples assembled from
//! it keep their promises (5xx never above requests when both come from the same vector,
//! histograms with finite counts only, quantiles within their buckets).
#![no_main]

use canary_pilot::analysis::prometheus::{assemble, decode};
use canary_pilot::analysis::SourceError;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Prometheus' float text: `NaN`, `+Inf`, `-Inf`, or a number.
fn reference_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn label(metric: &Value, name: &str) -> Option<String> {
    metric.get(name).and_then(Value::as_str).map(str::to_string)
}

fuzz_target!(|data: &[u8]| {
    let vector = match decode(data) {
        Ok(v) => v,
        Err(SourceError::Invalid(why)) => {
            assert!(!why.trim().is_empty(), "an error that says nothing");
            return;
        }
        Err(e) => panic!("the source answered, yet {e:?}"),
    };

    let services: Vec<&String> = vector
        .iter()
        .filter_map(|(l, _)| l.service.as_ref())
        .collect();
    let sides = assemble(vector.clone(), vector.clone(), vector.clone());
    for (service, side) in &sides {
        assert!(services.contains(&service), "{service} came from nowhere");
        // The same vector as requests and as errors: the same sum, bit for bit.
        assert!(same(side.requests, side.errors), "{service}: {side:?}");
        let mut top = 0.0f64;
        for (le, count) in side.latency.buckets() {
            assert!(!le.is_nan() && le >= 0.0, "{service}: bound {le}");
            assert!(!count.is_nan(), "{service}: bucket {le} counts {count}");
            if le.is_finite() {
                top = top.max(le);
            }
        }
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            if let Some(x) = side.latency.quantile(q) {
                assert!(
                    x.is_finite() && (0.0..=top).contains(&x),
                    "{service}: q{q} = {x}: {side:?}"
                );
            }
        }
    }

    // What the JSON says, read another way, where serde_json's `Value` can read it: serde_json
    // is lax in what decode skips (it does not check that a skipped string is UTF-8 or that its
    // escapes are whole, nor that a skipped number, the sample's timestamp, fits an f64), and
    // `Value` skips nothing. Bytes that are not UTF-8 are read as U+FFFD: they can only be in
    // skipped strings, since decode checks those it reads.
    let text = String::from_utf8_lossy(data);
    let Ok(doc) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    assert_eq!(doc["status"], "success");
    assert_eq!(doc["data"]["resultType"], "vector");
    let items = doc["data"]["result"]
        .as_array()
        .expect("a vector is an array");
    assert_eq!(items.len(), vector.len());
    for (item, (labels, value)) in items.iter().zip(&vector) {
        assert_eq!(labels.service, label(&item["metric"], "service"));
        assert_eq!(labels.le, label(&item["metric"], "le"));
        let text = item["value"][1].as_str().expect("a value is a string");
        let expected = reference_float(text).expect("a value is a number");
        assert!(same(*value, expected), "{text:?} read as {value}");
    }
});
