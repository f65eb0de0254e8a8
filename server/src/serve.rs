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
//! Shutdown is in two steps so that storage outlives the connections:
//! [`Connections::drain`] stops accepting and lets in-flight requests finish;
//! the caller then flushes and closes storage; [`Connections::finish`] ends the
//! threads. The threads' runtimes keep running in between because a pooled
//! PostgreSQL connection opened by a request is registered with the I/O driver
//! of the runtime that opened it.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

/// The number of serving threads when none is configured: one per CPU the
/// process may use (the standard library reads cgroup CPU quotas).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

struct Worker {
    /// Dropped to tell the thread to shut its connections down.
    connections: Option<mpsc::UnboundedSender<std::net::TcpStream>>,
    drained: oneshot::Receiver<()>,
    finish: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The serving threads of one listener.
pub struct Connections {
    workers: Vec<Worker>,
}

impl Connections {
    /// Starts `threads` serving threads (at least one) for `router`.
    pub fn start(router: Router, threads: usize) -> io::Result<Connections> {
        let mut workers = Vec::with_capacity(threads.max(1));
        for i in 0..threads.max(1) {
            let (connections, incoming) = mpsc::unbounded_channel();
            let (drained_tx, drained) = oneshot::channel();
            let (finish, finish_rx) = oneshot::channel();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let router = router.clone();
            let thread = std::thread::Builder::new()
                .name(format!("tokenops-http-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        serve_connections(incoming, router).await;
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
        Ok(Connections { workers })
    }

    /// Accepts on `listener` until `shutdown` resolves, then stops accepting
    /// and waits until every connection has finished its in-flight request.
    pub async fn drain(
        &mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut next = 0usize;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Most likely out of file descriptors: wait for some to close.
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            };
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
                .is_none_or(|c| c.send(tcp).is_err())
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
/// closes, then shuts them down gracefully: idle keep-alive connections close
/// at once, a connection in the middle of a request closes after its response.
async fn serve_connections(
    mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>,
    router: Router,
) {
    let graceful = GracefulShutdown::new();
    let http = hyper::server::conn::http1::Builder::new();
    while let Some(tcp) = incoming.recv().await {
        let tcp = match tokio::net::TcpStream::from_std(tcp) {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot register a connection");
                continue;
            }
        };
        let service = router
            .clone()
            .map_request(|req: http::Request<Incoming>| req.map(Body::new));
        let conn = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
