//! The HTTP listener under the API: hyper's HTTP/1 connections with a header-read timeout, an
//! idle timeout, a per-request time limit and a connection limit that evicts the connection
//! silent the longest, so that slow or idle sockets can neither hold the daemon's file
//! descriptors nor lock Traefik's poll out. Accept errors (out of file descriptors) are waited
//! out, not fatal.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long connections and requests may take, and how many connections are served at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this, from its first byte or from the connection.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// A request (its body included) must be answered within this; then 408.
    pub request_timeout: Duration,
    /// Connections served at once; one more evicts the connection silent the longest.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(open_files_limit()),
        }
    }
}

/// At most 512 connections, and never more than half the descriptors the process may open, so
/// that the state file, metrics scrapes and notifications always find one.
fn default_max_connections(open_files: Option<u64>) -> usize {
    let half = open_files.map_or(usize::MAX, |n| (n / 2) as usize);
    half.clamp(8, 512)
}

/// The process's soft limit of open files, from `/proc/self/limits` where there is one.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Time since the listener started, in milliseconds: when a connection last moved a byte.
type Clock = Arc<Instant>;

fn millis_since(origin: &Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

/// What the limit knows of one connection: when it was accepted, when it last moved a byte,
/// and whether it was ever answered.
struct Activity {
    accepted: u64,
    last_active: AtomicU64,
    answered: std::sync::atomic::AtomicBool,
}

/// A socket that notes when it last read or wrote, and that it wrote an answer.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    origin: Clock,
}

impl Tracked {
    fn touch(&self) {
        self.activity
            .last_active
            .store(millis_since(&self.origin), Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
            self.activity.answered.store(true, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The open connections: what each did, and how to close it.
#[derive(Default)]
struct Open {
    next_id: u64,
    conns: BTreeMap<u64, (Arc<Activity>, Arc<Notify>)>,
}

impl Open {
    /// Closes the oldest connection that was never answered (a client that never sent a whole
    /// request: what a slowloris holds); when every one was answered, the one silent the longest.
    fn evict(&mut self) {
        let unanswered = self
            .conns
            .iter()
            .filter(|(_, (a, _))| !a.answered.load(Ordering::Relaxed))
            .min_by_key(|(_, (a, _))| a.accepted)
            .map(|(id, _)| *id);
        let victim = unanswered.or_else(|| {
            self.conns
                .iter()
                .min_by_key(|(_, (a, _))| a.last_active.load(Ordering::Relaxed))
                .map(|(id, _)| *id)
        });
        if let Some(id) = victim {
            if let Some((_, close)) = self.conns.remove(&id) {
                close.notify_one();
            }
        }
    }
}

/// Answers 408 when a request (its body included) takes longer than `limit`.
async fn request_time_limit(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": "request_timeout",
                "detail": format!("the request was not complete within {limit:?}"),
            })),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves; then lets the open
/// connections finish their requests (at most `limits.request_timeout`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let request_timeout = limits.request_timeout;
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        request_time_limit(request_timeout, req, next)
    }));
    let origin: Clock = Arc::new(Instant::now());
    let open = Arc::new(Mutex::new(Open::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) or a connection reset before it
                    // was accepted: wait a little for descriptors to come back, and go on.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let now = millis_since(&origin);
        let activity = Arc::new(Activity {
            accepted: now,
            last_active: AtomicU64::new(now),
            answered: std::sync::atomic::AtomicBool::new(false),
        });
        let close = Arc::new(Notify::new());
        let id = {
            let mut open = open.lock().expect("poisoned");
            if open.conns.len() >= limits.max_connections {
                open.evict();
            }
            let id = open.next_id;
            open.next_id += 1;
            open.conns.insert(id, (activity.clone(), close.clone()));
            id
        };
        let io = Tracked {
            inner: stream,
            activity: activity.clone(),
            origin: origin.clone(),
        };
        let service = TowerToHyperService::new(router.clone());
        let (origin, open, mut stop) = (origin.clone(), open.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let idle_ms = limits.idle_timeout.as_millis() as u64;
            let mut check = tokio::time::interval(limits.idle_timeout / 4);
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = close.notified() => break,
                    _ = stop.changed() => conn.as_mut().graceful_shutdown(),
                    _ = check.tick() => {
                        let last = activity.last_active.load(Ordering::Relaxed);
                        let quiet = millis_since(&origin).saturating_sub(last);
                        if quiet >= idle_ms {
                            break;
                        }
                    }
                }
            }
            open.lock().expect("poisoned").conns.remove(&id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = tokio::time::sleep(limits.request_timeout);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            _ = &mut grace => break,
        }
    }
    Ok(())
}

/// The body of a response, for tests.
#[cfg(test)]
async fn body_text(resp: reqwest::Response) -> String {
    resp.text().await.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::AsyncWriteExt;

    async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(listener, router, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(600),
            request_timeout: Duration::from_millis(500),
            max_connections: 8,
        }
    }

    /// Whether the server has closed `s` (a read returns end of file or an error).
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            match tokio::time::timeout(within, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    #[test]
    fn the_connection_limit_leaves_half_the_descriptors_free() {
        assert_eq!(default_max_connections(Some(1024)), 512);
        assert_eq!(default_max_connections(Some(256)), 128);
        assert_eq!(default_max_connections(Some(1 << 20)), 512);
        assert_eq!(default_max_connections(None), 512);
        assert_eq!(default_max_connections(Some(4)), 8);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[tokio::test]
    async fn a_connection_that_never_finishes_its_headers_is_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // The answer arrives, then nothing more: the connection is closed after the idle timeout.
        assert!(closed_within(&mut s, Duration::from_secs(3)).await);
    }

    #[tokio::test]
    async fn a_request_over_its_time_limit_gets_a_json_408() {
        let (addr, _stop) = start(limits()).await;
        let resp = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
        assert_eq!(resp.status(), 408);
        assert!(body_text(resp).await.contains("\"request_timeout\""));
    }

    #[tokio::test]
    async fn more_silent_connections_than_the_limit_do_not_lock_a_client_out() {
        let (addr, _stop) = start(Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            ..limits()
        })
        .await;
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        for _ in 0..3 {
            let resp = client.get(format!("http://{addr}/")).send().await.unwrap();
            assert_eq!(body_text(resp).await, "ok");
        }
        // The oldest silent ones were closed to make room.
        assert!(closed_within(&mut silent[0], Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn a_client_that_was_answered_outlives_newer_silent_connections() {
        let (addr, _stop) = start(Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            ..limits()
        })
        .await;
        let client = reqwest::Client::new();
        let first = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(body_text(first).await, "ok");
        // Silent connections arrive after it, more than the limit.
        let mut silent = Vec::new();
        for _ in 0..20 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The same pooled connection is still open and answers.
        let again = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert_eq!(body_text(again).await, "ok");
    }
}
