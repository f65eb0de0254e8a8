//! Test helpers: a small misbehaving HTTP proxy in front of a real server, and
//! a way to wait for the client's "retrying" trace event instead of sleeping.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenops_client::secrecy::SecretString;
use tokenops_client::{Client, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the n-th request (counting from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the request on and the response back.
    Forward,
    /// Answer with this status itself, without forwarding.
    Fail(u16),
    /// Pass the request on, then drop the connection instead of answering:
    /// the server acted, the client never hears about it.
    DropResponse,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub action: Action,
}

/// An HTTP/1.1 proxy that applies a script of [`Action`]s to successive
/// requests (then forwards everything), and records what it saw.
pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a fresh loopback port.
    pub async fn start(upstream: &str, script: Vec<Action>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, upstream, script)
    }

    /// Starts a proxy on a listener the test already bound.
    pub fn start_on(listener: TcpListener, upstream: &str, script: Vec<Action>) -> Proxy {
        let addr = listener.local_addr().unwrap();
        let upstream = upstream_addr(upstream);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        return;
                    };
                    let (seen, counter, script) = (seen.clone(), counter.clone(), script.clone());
                    tokio::spawn(async move {
                        let _ = serve_connection(conn, upstream, &seen, &counter, &script).await;
                    });
                }
            })
        };
        Proxy { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many requests had this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn upstream_addr(url: &str) -> SocketAddr {
    let u = url::Url::parse(url).unwrap();
    let host = u.host_str().unwrap();
    let port = u.port_or_known_default().unwrap();
    format!("{host}:{port}").parse().unwrap()
}

/// A request read off the wire: its head lines and its body.
struct RawRequest {
    lines: Vec<String>,
    body: Vec<u8>,
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<RawRequest>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
    let length = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(RawRequest { lines, body }))
}

fn header(lines: &[String], name: &str) -> Option<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

async fn serve_connection(
    mut conn: TcpStream,
    upstream: SocketAddr,
    seen: &Mutex<Vec<Seen>>,
    counter: &AtomicUsize,
    script: &[Action],
) -> std::io::Result<()> {
    while let Some(req) = read_request(&mut conn).await? {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let action = script.get(n).copied().unwrap_or(Action::Forward);
        let mut parts = req.lines[0].split(' ');
        seen.lock().unwrap().push(Seen {
            method: parts.next().unwrap_or_default().to_string(),
            path: parts.next().unwrap_or_default().to_string(),
            idempotency_key: header(&req.lines, "idempotency-key"),
            action,
        });
        match action {
            Action::Fail(status) => {
                let reply = format!(
                    "HTTP/1.1 {status} Proxy Says No\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nno dice\n"
                );
                conn.write_all(reply.as_bytes()).await?;
            }
            Action::Forward | Action::DropResponse => {
                let response = forward(upstream, &req).await?;
                if action == Action::DropResponse {
                    return Ok(()); // dropping `conn` closes it without a reply
                }
                conn.write_all(&response).await?;
                // The forwarded response says `connection: close`; honour it.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Sends the request upstream on a fresh connection marked `close`, and reads
/// the whole response.
async fn forward(upstream: SocketAddr, req: &RawRequest) -> std::io::Result<Vec<u8>> {
    let mut out = TcpStream::connect(upstream).await?;
    let mut head = String::new();
    for line in &req.lines {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    out.write_all(head.as_bytes()).await?;
    out.write_all(&req.body).await?;
    let mut response = Vec::new();
    out.read_to_end(&mut response).await?;
    Ok(response)
}

/// A quick retry policy for tests: many fast retries.
pub fn fast_retries(n: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_retries(n)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(100))
}

/// A client for `url` with the owner token and the given retry policy.
pub fn client(url: &str, token: &str, retry: RetryPolicy) -> Client {
    Client::builder(url)
        .token(SecretString::from(token))
        .retry_policy(retry)
        .build()
        .unwrap()
}

/// Notifies a channel whenever the client logs that it is going to retry, so
/// tests wait for that instead of sleeping.
pub mod retry_events {
    use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
    use tracing::Subscriber;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    struct Watch(UnboundedSender<()>);

    impl<S: Subscriber> Layer<S> for Watch {
        fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
            if event.metadata().target().starts_with("tokenops_client") {
                let mut visitor = MessageIs(false);
                event.record(&mut visitor);
                if visitor.0 {
                    let _ = self.0.send(());
                }
            }
        }
    }

    struct MessageIs(bool);

    impl tracing::field::Visit for MessageIs {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" && format!("{value:?}").contains("retrying") {
                self.0 = true;
            }
        }
    }

    /// Installs the watcher for the current thread; keep the guard alive.
    pub fn watch() -> (tracing::subscriber::DefaultGuard, UnboundedReceiver<()>) {
        let (tx, rx) = unbounded_channel();
        let subscriber = tracing_subscriber::registry().with(Watch(tx));
        (tracing::subscriber::set_default(subscriber), rx)
    }
}
