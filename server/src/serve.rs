//! HTTP serving: one accept loop hands each connection, round-robin, to one of
//! a fixed set of threads, and each of those threads runs its own
//! single-threaded tokio runtime that serves its connections to the end.
//!
//! Why not `axum::serve` on the multi-threaded runtime: hyper's HTTP/1 server
//! passes a request body to the handler through a channel, and the wake that
//! follows re-schedules the connection's task. On the multi-threaded runtime a
//! re-schedule unparks another worker thread (a futex wake, and often the task
//! moving to the other core), which cost a body-carrying request such as
//! `POST /v1/verify` about 4 µs of its 17 µs of server CPU (README,
//! Performance). A connection that stays on one single-threaded runtime is
//! re-polled on the thread that woke it. Everything else (the accept loop, the
//! last-used flusher, PostgreSQL notifications) stays on the caller's runtime.
//!
//! The edge's limits ([`HttpSettings`]) are kept here too:
//!
//! * **Header timeout.** A request head must arrive within it, counted from its
//!   first byte. **Idle timeout.** A keep-alive connection with no request
//!   closes after it, and so does a request on which no byte moves for that
//!   long (a stalled body, a response nobody reads). hyper's own
//!   `header_read_timeout` starts counting when it begins waiting for a head,
//!   idle time included, so it cannot tell the two apart; each connection
//!   therefore carries an [`Activity`] record, written by its socket wrapper
//!   and its service (a few relaxed atomic stores and one clock read per
//!   request), and one timer that wakes at least once per header timeout to
//!   judge it. Busy connections never re-arm a timer per request.
//! * **Connection limit.** The accept loop counts open connections and answers
//!   one beyond the limit with a ready-made `503` problem and closes it at
//!   once: nothing queues. Should the process run out of file descriptors all
//!   the same, a spare descriptor is given up to accept and close the waiting
//!   connection, so the loop neither stalls nor spins.
//! * **Errors.** Every error answer leaving through this edge is
//!   `application/problem+json`: an error produced below the API's own error
//!   type (axum's path decoding, for instance) is replaced by a problem with
//!   the same status and a fixed text that never repeats the request.
//!
//! Shutdown is in two steps so that storage outlives the connections:
//! [`Connections::drain`] stops accepting, closes idle and half-received
//! connections at once and lets in-flight requests finish up to the shutdown
//! deadline, after which their connections are closed; the caller then
//! flushes and closes storage; [`Connections::finish`] ends the threads. The
//! threads' runtimes keep running in between because a pooled PostgreSQL
//! connection opened by a request is registered with the I/O driver of the
//! runtime that opened it.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokenops_types::{Problem, codes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tower::Service;

/// The number of serving threads when none is configured: one per CPU the
/// process may use (the standard library reads cgroup CPU quotas).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Raises the soft limit on open files to the hard limit (as Go's runtime
/// does) and returns the soft limit now in force, or `None` when it cannot be
/// read. Called by the binary before it picks a default connection limit.
pub fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The connection limit when none is configured: the soft limit on open files
/// less a reserve (an eighth of it, between 32 and 256) for storage, the
/// listener, the runtimes and logs.
pub fn default_max_connections() -> usize {
    let files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    let files = usize::try_from(files).unwrap_or(usize::MAX).min(1 << 20);
    let reserve = (files / 8).clamp(32, 256);
    files.saturating_sub(reserve).max(1)
}

/// The limits of the HTTP edge (flags of `tokenops-server serve`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Serving threads, each with its own single-threaded runtime.
    pub threads: usize,
    /// Longest time from the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Longest time a connection may sit without a request, or a request
    /// without a byte moving.
    pub idle_timeout: Duration,
    /// Open connections beyond this are answered `503` and closed.
    pub max_connections: usize,
    /// Longest time shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            threads: default_threads(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl HttpSettings {
    /// Rejects settings that cannot work, naming the flag.
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, d) in [
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if d < Duration::from_millis(1) {
                anyhow::bail!("{flag}: must be at least 1ms");
            }
        }
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections: must be at least 1");
        }
        Ok(())
    }
}

/// A connection handed to a serving thread, with its place in the count of
/// open connections (given back when this is dropped).
struct Handover {
    tcp: std::net::TcpStream,
    _slot: Slot,
}

struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where shutdown has got to, as the serving threads tell their connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish the request in flight, then close; close at once if there is none.
    Draining,
    /// The deadline has passed: close now.
    Closing,
}

struct Worker {
    /// Dropped to tell the thread to shut its connections down.
    connections: Option<mpsc::UnboundedSender<Handover>>,
    drained: oneshot::Receiver<()>,
    finish: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The serving threads of one listener.
pub struct Connections {
    workers: Vec<Worker>,
    settings: HttpSettings,
    open: Arc<AtomicUsize>,
    /// The answer to a connection beyond the limit, rendered once.
    refusal: Bytes,
}

impl Connections {
    /// Starts `settings.threads` serving threads (at least one) for `router`.
    pub fn start(router: Router, settings: &HttpSettings) -> io::Result<Connections> {
        let threads = settings.threads.max(1);
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (connections, incoming) = mpsc::unbounded_channel();
            let (drained_tx, drained) = oneshot::channel();
            let (finish, finish_rx) = oneshot::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let router = router.clone();
            let settings = settings.clone();
            let thread = std::thread::Builder::new()
                .name(format!("tokenops-http-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        serve_connections(incoming, router, settings).await;
                        let _ = drained_tx.send(());
                        let _ = finish_rx.await;
                    });
                })?;
            workers.push(Worker {
                connections: Some(connections),
                drained,
                finish,
                thread,
            });
        }
        Ok(Connections {
            workers,
            settings: settings.clone(),
            open: Arc::default(),
            refusal: refusal_response(),
        })
    }

    /// Accepts on `listener` until `shutdown` resolves, then stops accepting
    /// and waits until every connection has finished its in-flight request
    /// (at most the shutdown deadline).
    pub async fn drain(
        &mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut next = 0usize;
        let mut spare = SpareDescriptor::new();
        let mut refusals = RefusalLog::default();
        let mut refuse_next = false;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    // Give up the spare descriptor so that the next accept
                    // takes the waiting connection off the queue to refuse
                    // it; without a spare, pause briefly.
                    refusals.out_of_descriptors(&e);
                    if spare.release() {
                        refuse_next = true;
                    } else {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(10)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(10)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
            if refuse_next {
                refuse(tcp, &self.refusal);
                refusals.refused(self.settings.max_connections);
                refuse_next = false;
                spare = SpareDescriptor::new();
                continue;
            }
            if self.open.load(Ordering::Relaxed) >= self.settings.max_connections {
                refuse(tcp, &self.refusal);
                refusals.refused(self.settings.max_connections);
                continue;
            }
            self.open.fetch_add(1, Ordering::Relaxed);
            let slot = Slot(self.open.clone());
            let _ = tcp.set_nodelay(true);
            let tcp = match tcp.into_std() {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand over a connection");
                    continue;
                }
            };
            let worker = &self.workers[next % self.workers.len()];
            next = next.wrapping_add(1);
            if worker
                .connections
                .as_ref()
                .is_none_or(|c| c.send(Handover { tcp, _slot: slot }).is_err())
            {
                return Err(io::Error::other("a serving thread has stopped"));
            }
        }
        drop(listener);
        for worker in &mut self.workers {
            worker.connections = None;
        }
        for worker in &mut self.workers {
            let _ = (&mut worker.drained).await;
        }
        Ok(())
    }

    /// Ends the serving threads (after [`Connections::drain`]).
    pub async fn finish(self) {
        let threads: Vec<_> = self
            .workers
            .into_iter()
            .map(|w| {
                let _ = w.finish.send(());
                w.thread
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Serves every connection that arrives on `incoming` until the channel
/// closes, then shuts them down: idle and half-received connections close at
/// once, a connection in the middle of a request closes after its response or
/// at the shutdown deadline, whichever comes first.
async fn serve_connections(
    mut incoming: mpsc::UnboundedReceiver<Handover>,
    router: Router,
    settings: HttpSettings,
) {
    let (phase, _) = watch::channel(Phase::Serving);
    // No hyper timer: the header and idle timeouts are kept by `drive`.
    let http = hyper::server::conn::http1::Builder::new();
    let limits = Limits::new(&settings);
    while let Some(Handover { tcp, _slot: slot }) = incoming.recv().await {
        let tcp = match TcpStream::from_std(tcp) {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot register a connection");
                continue;
            }
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(TrackedStream {
            tcp,
            activity: activity.clone(),
        });
        let service = EdgeService {
            router: router.clone(),
            activity: activity.clone(),
        };
        let conn = http.serve_connection(io, service);
        let phase = phase.subscribe();
        tokio::spawn(async move {
            drive(conn, &activity, limits, phase).await;
            drop(slot);
        });
    }
    phase.send_replace(Phase::Draining);
    let deadline = tokio::time::timeout(settings.shutdown_timeout, phase.closed());
    if deadline.await.is_err() {
        tracing::warn!(
            connections = phase.receiver_count(),
            "requests still in flight at the shutdown deadline; closing their connections"
        );
        phase.send_replace(Phase::Closing);
        phase.closed().await;
    }
}

/// The timeouts of one connection, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_ms: u64,
    idle_ms: u64,
}

impl Limits {
    fn new(settings: &HttpSettings) -> Limits {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        Limits {
            header_ms: ms(settings.header_timeout),
            idle_ms: ms(settings.idle_timeout),
        }
    }
}

/// Serves one connection until it ends, times out, or shutdown closes it.
async fn drive(
    conn: hyper::server::conn::http1::Connection<TokioIo<TrackedStream>, EdgeService>,
    activity: &Activity,
    limits: Limits,
    mut phase: watch::Receiver<Phase>,
) {
    let mut conn = pin!(conn);
    let mut judge = Judge::default();
    let timer = tokio::time::sleep(Duration::from_millis(limits.header_ms.min(limits.idle_ms)));
    let mut timer = pin!(timer);
    {
        let mut shutdown = pin!(phase.changed());
        loop {
            tokio::select! {
                biased;
                ended = conn.as_mut() => return log_end(ended),
                () = timer.as_mut() => match judge.next_check(activity, limits) {
                    Some(wait) => timer.as_mut().reset(tokio::time::Instant::now() + wait),
                    None => return,
                },
                _ = shutdown.as_mut() => break,
            }
        }
    }
    if *phase.borrow_and_update() != Phase::Draining || activity.in_flight() == 0 {
        // Idle, or a head still arriving: no request is lost by closing now.
        return;
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        ended = conn.as_mut() => log_end(ended),
        _ = phase.wait_for(|p| *p == Phase::Closing) => {}
    }
}

fn log_end(ended: hyper::Result<()>) {
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// No request in progress and none started.
const NONE: u64 = u64::MAX;

/// What one connection is doing, written by its socket wrapper and its
/// service, read by its timer. Times are milliseconds since `opened`.
/// Everything runs on the connection's own task: the atomics are relaxed.
struct Activity {
    opened: Instant,
    /// Requests handed to the router whose response is not ready yet.
    in_flight: AtomicU32,
    /// When the first byte of the request head now arriving was read.
    head_since: AtomicU64,
    /// When the connection last became free of requests.
    idle_since: AtomicU64,
    /// Bumped on every read or write that moved bytes.
    io_events: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            // A new connection is waiting for its first head.
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            io_events: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn bump_io(&self) {
        let n = self.io_events.load(Ordering::Relaxed);
        self.io_events.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Bytes were read: with no request in progress they begin a head.
    fn on_read(&self) {
        self.bump_io();
        if self.in_flight() == 0 && self.head_since.load(Ordering::Relaxed) == NONE {
            self.head_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A head is complete and its request goes to the router.
    fn on_request(&self) {
        self.in_flight
            .store(self.in_flight() + 1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
    }

    /// The router has answered.
    fn on_response(&self) {
        let n = self.in_flight().saturating_sub(1);
        self.in_flight.store(n, Ordering::Relaxed);
        if n == 0 {
            self.idle_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }
}

/// The timer's memory between two checks of a connection.
#[derive(Default)]
struct Judge {
    /// `io_events` and the time at the last check while a request was in flight.
    in_flight_seen: Option<(u64, u64)>,
}

impl Judge {
    /// How long until the next check, or `None` when the connection is to be
    /// closed. Never longer than the header timeout, so a head that starts
    /// while the timer sleeps is still caught on time.
    fn next_check(&mut self, activity: &Activity, limits: Limits) -> Option<Duration> {
        let now = activity.now_ms();
        let wait = if activity.in_flight() > 0 {
            let events = activity.io_events.load(Ordering::Relaxed);
            match self.in_flight_seen {
                Some((seen, since)) if seen == events => {
                    if now.saturating_sub(since) >= limits.idle_ms {
                        tracing::debug!("closing a connection whose request made no progress");
                        return None;
                    }
                    since + limits.idle_ms - now
                }
                _ => {
                    self.in_flight_seen = Some((events, now));
                    limits.idle_ms
                }
            }
        } else {
            self.in_flight_seen = None;
            let head = activity.head_since.load(Ordering::Relaxed);
            let (deadline, what) = if head == NONE {
                let idle = activity.idle_since.load(Ordering::Relaxed);
                (idle.saturating_add(limits.idle_ms), "idle")
            } else {
                (head.saturating_add(limits.header_ms), "header")
            };
            if now >= deadline {
                tracing::debug!(timeout = what, "closing a connection at its timeout");
                return None;
            }
            deadline - now
        };
        Some(Duration::from_millis(wait.clamp(1, limits.header_ms)))
    }
}

/// A connection's socket, noting reads and writes in its [`Activity`].
struct TrackedStream {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, buf))?;
        self.activity.bump_io();
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs))?;
        self.activity.bump_io();
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service: counts its requests in
/// flight and makes every error answer a problem.
struct EdgeService {
    router: Router,
    activity: Arc<Activity>,
}

impl hyper::service::Service<http::Request<Incoming>> for EdgeService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = EdgeFuture;

    fn call(&self, req: http::Request<Incoming>) -> EdgeFuture {
        self.activity.on_request();
        // `Router::poll_ready` is always ready, so `call` needs no readiness.
        let inner = self.router.clone().call(req);
        EdgeFuture {
            inner,
            activity: self.activity.clone(),
        }
    }
}

struct EdgeFuture {
    inner: axum::routing::future::RouteFuture<std::convert::Infallible>,
    activity: Arc<Activity>,
}

impl Future for EdgeFuture {
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(res) = ready!(Pin::new(&mut self.inner).poll(cx));
        self.activity.on_response();
        Poll::Ready(Ok(as_problem(res)))
    }
}

/// An error answer that is not JSON (a problem, or a documented JSON answer
/// such as verify's `429`) nor one of the dashboard's HTML pages (rendered by
/// escaping templates, for a person) becomes a problem with the same status.
/// Its body is dropped unread: axum's rejections quote the input.
fn as_problem(res: Response) -> Response {
    let status = res.status();
    if status.as_u16() < 400
        || res.headers().get(header::CONTENT_TYPE).is_some_and(|ct| {
            let ct = ct.as_bytes();
            ct.starts_with(b"application/problem+json")
                || ct.starts_with(b"application/json")
                || ct.starts_with(b"text/html")
        })
    {
        return res;
    }
    let (code, detail) = match status {
        StatusCode::BAD_REQUEST => (
            codes::BAD_REQUEST,
            "the request could not be read: its path, query or a header is not valid \
             (for example, not UTF-8 once percent-decoded)",
        ),
        StatusCode::NOT_FOUND => (codes::NOT_FOUND, "route not found"),
        StatusCode::METHOD_NOT_ALLOWED => (
            codes::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            codes::PAYLOAD_TOO_LARGE,
            "request body is larger than the limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            codes::UNSUPPORTED_MEDIA_TYPE,
            "request body must be JSON: send Content-Type: application/json",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (codes::UNAVAILABLE, "service unavailable; retry later"),
        s if s.is_server_error() => (codes::INTERNAL, "internal server error"),
        _ => (codes::BAD_REQUEST, "the request could not be handled"),
    };
    let mut out = problem_response(status, code, detail);
    for name in [header::ALLOW, header::CONNECTION, header::RETRY_AFTER] {
        if let Some(v) = res.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

fn problem_response(status: StatusCode, code: &str, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let problem = Problem::new(status.as_u16(), code, title).with_detail(detail);
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut res = (status, Body::from(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

/// The bytes of the `503` a connection beyond the limit gets.
fn refusal_response() -> Bytes {
    let title = StatusCode::SERVICE_UNAVAILABLE
        .canonical_reason()
        .unwrap_or("Error");
    let problem = Problem::new(503, codes::UNAVAILABLE, title)
        .with_detail("the server has too many open connections; retry later");
    let body = serde_json::to_string(&problem).unwrap_or_default();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Answers a connection beyond the limit without waiting for anything: what
/// the client already sent is read (so that closing does not reset the
/// connection before it reads the answer), the `503` is written if the
/// socket takes it, and the connection is closed.
fn refuse(tcp: TcpStream, answer: &[u8]) {
    let mut scratch = [0u8; 2048];
    let _ = tcp.try_read(&mut scratch);
    let _ = tcp.try_write(answer);
}

/// A descriptor held in reserve for accepting (and refusing) a connection
/// when the process has no descriptor left.
struct SpareDescriptor(Option<std::fs::File>);

impl SpareDescriptor {
    fn new() -> SpareDescriptor {
        SpareDescriptor(std::fs::File::open("/dev/null").ok())
    }

    /// Closes the spare; false if there was none.
    fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

/// Logs refusals at most once per ten seconds, with their count.
#[derive(Default)]
struct RefusalLog {
    since_last: u64,
    last: Option<Instant>,
}

impl RefusalLog {
    fn due(&mut self) -> bool {
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            self.last = Some(Instant::now());
        }
        due
    }

    fn refused(&mut self, limit: usize) {
        self.since_last += 1;
        if self.due() {
            tracing::warn!(
                refused = self.since_last,
                max_connections = limit,
                "refusing connections: the connection limit is reached"
            );
            self.since_last = 0;
        }
    }

    fn out_of_descriptors(&mut self, e: &io::Error) {
        if self.due() {
            tracing::error!(error = %e, "out of file descriptors: refusing connections");
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::errno::Errno::EMFILE as i32 || code == nix::errno::Errno::ENFILE as i32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_ms: 100,
            idle_ms: 1000,
        }
    }

    #[test]
    fn a_head_that_starts_while_idle_is_timed_from_its_first_byte() {
        let a = Activity::new();
        let mut judge = Judge::default();
        // idle: the next check comes no later than one header timeout
        assert_eq!(
            judge.next_check(&a, limits()),
            Some(Duration::from_millis(100))
        );
        a.head_since.store(a.now_ms(), Ordering::Relaxed);
        assert!(judge.next_check(&a, limits()).unwrap() <= Duration::from_millis(100));
        a.head_since.store(0, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(101));
        assert_eq!(judge.next_check(&a, limits()), None, "stalled head closes");
    }

    #[test]
    fn a_request_in_flight_closes_only_when_no_byte_moves_for_the_idle_timeout() {
        let a = Activity::new();
        a.on_read();
        a.on_request();
        let mut judge = Judge::default();
        let l = Limits {
            header_ms: 1000,
            idle_ms: 1,
        };
        assert!(judge.next_check(&a, l).is_some(), "first look only notes");
        std::thread::sleep(Duration::from_millis(2));
        a.bump_io();
        assert!(judge.next_check(&a, l).is_some(), "bytes moved: keep");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(judge.next_check(&a, l), None, "nothing moved: close");
        a.on_response();
        assert_eq!(a.in_flight(), 0);
    }

    #[test]
    fn error_answers_become_problems_without_their_body() {
        let res = (StatusCode::BAD_REQUEST, "Invalid URL: tko_secret").into_response();
        let res = as_problem(res);
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let ok = as_problem((StatusCode::OK, "fine").into_response());
        assert_eq!(
            ok.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let r = refusal_response();
        let text = std::str::from_utf8(&r).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let p: Problem = serde_json::from_str(body).unwrap();
        assert_eq!(p.code, codes::UNAVAILABLE);
    }
}
