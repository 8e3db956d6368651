//! Routing through a real Traefik 3.7 polling canary-pilot: weights, pins, sticky sessions.

mod common;

use common::{count, Options, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_set_through_the_api_are_what_traefik_routes() {
    let stack = Stack::start(Options::default()).await;

    // Weight 0 (initial): no request reaches the canary.
    let c = stack.versions(300, &[]).await;
    assert_eq!(count(&c, "v2"), 0, "{c:?}");
    assert_eq!(count(&c, "v1"), 300, "{c:?}");

    stack.set_weight(10).await;
    let took = stack.wait_applied(10).await;
    eprintln!("weight 10 applied by Traefik after {took:?}");
    let c = stack.versions(1000, &[]).await;
    let canary = count(&c, "v2");
    assert!(
        (90..=110).contains(&canary),
        "canary got {canary} of 1000 at weight 10: {c:?}"
    );
    assert_eq!(canary + count(&c, "v1"), 1000, "{c:?}");

    stack.set_weight(100).await;
    stack.wait_applied(100).await;
    let c = stack.versions(300, &[]).await;
    assert_eq!(count(&c, "v2"), 300, "{c:?}");

    stack.set_weight(0).await;
    stack.wait_applied(0).await;
    let c = stack.versions(300, &[]).await;
    assert_eq!(count(&c, "v1"), 300, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_header_and_pin_cookie_reach_the_canary_whatever_the_weight() {
    let stack = Stack::start(Options::default()).await;
    for weight in [0u8, 50] {
        if weight != 0 {
            stack.set_weight(weight).await;
            stack.wait_applied(weight as u64).await;
        }
        let c = stack.versions(200, &[("X-Canary", "true")]).await;
        assert_eq!(count(&c, "v2"), 200, "header pin at weight {weight}: {c:?}");
        let c = stack
            .versions(200, &[("Cookie", "session=abc; canary=true")])
            .await;
        assert_eq!(count(&c, "v2"), 200, "cookie pin at weight {weight}: {c:?}");
        let c = stack.versions(100, &[("Cookie", "canary=true")]).await;
        assert_eq!(
            count(&c, "v2"),
            100,
            "cookie pin alone at weight {weight}: {c:?}"
        );
    }
    // Lookalikes do not pin: at weight 0 they all reach stable.
    stack.set_weight(0).await;
    stack.wait_applied(0).await;
    for headers in [
        vec![("X-Canary", "false")],
        vec![("X-Canary", "TRUE")],
        vec![("Cookie", "notcanary=true")],
        vec![("Cookie", "canary=truely")],
    ] {
        let c = stack.versions(50, &headers).await;
        assert_eq!(count(&c, "v1"), 50, "{headers:?}: {c:?}");
    }
    // The header name is case-insensitive, as HTTP says.
    let c = stack.versions(50, &[("x-canary", "true")]).await;
    assert_eq!(count(&c, "v2"), 50, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_a_client_on_one_version() {
    let stack = Stack::start(Options {
        sticky: true,
        ..Options::default()
    })
    .await;
    stack.set_weight(50).await;
    stack.wait_applied(50).await;
    let url = format!("http://127.0.0.1:{}/", stack.web);
    let mut seen = std::collections::BTreeSet::new();
    for client in 0..12 {
        let first = stack
            .http
            .get(&url)
            .header("host", common::HOST)
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 200);
        let version = first.headers()["x-version"].to_str().unwrap().to_string();
        let cookie = first
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("api_lb="))
            .unwrap_or_else(|| panic!("client {client}: no sticky cookie set"))
            .split(';')
            .next()
            .unwrap()
            .to_string();
        for _ in 0..25 {
            let c = stack.versions(1, &[("Cookie", &cookie)]).await;
            assert_eq!(
                count(&c, &version),
                1,
                "client {client} with {cookie} moved: {c:?}"
            );
        }
        seen.insert(version);
    }
    assert_eq!(
        seen.len(),
        2,
        "new clients at 50/50 should land on both versions: {seen:?}"
    );
    // Sanity: the cookie really is what keeps them; without it requests alternate.
    let c = stack.versions(20, &[]).await;
    assert!(count(&c, "v1") > 0 && count(&c, "v2") > 0, "{c:?}");
}
