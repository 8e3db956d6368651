//! A stand-in for canary-pilot's admin API that answers recorded views: `status` and the docs'
//! examples render a real release's answer (tests/fixtures/status-rolled-back.json) through
//! the real binary, without waiting for a real release to fail. Every GET of
//! `/api/v1/apps/{app}` answers the recorded app, `/api/v1/events` its events, anything else
//! the listing of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// The recorded answer of `GET /api/v1/apps/api` right after a rollback.
pub const ROLLED_BACK: &str = include_str!("../fixtures/status-rolled-back.json");

/// Serves `detail` (an `AppDetail` as JSON) until the test process ends; returns its URL.
pub fn serve(detail: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let value: serde_json::Value = serde_json::from_str(detail).unwrap();
    let events = serde_json::json!({ "events": value["events"] }).to_string();
    let mut view = value.clone();
    let object = view.as_object_mut().unwrap();
    object.remove("analyses");
    object.remove("events");
    let list = serde_json::json!({ "apps": [view] }).to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = [0u8; 4096];
            let n = conn.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let body = if path.starts_with("/api/v1/apps/") {
                detail.to_string()
            } else if path.starts_with("/api/v1/events") {
                events.clone()
            } else {
                list.clone()
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}
