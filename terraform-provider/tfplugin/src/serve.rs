//! The plugin entry point: the go-plugin handshake, AutoMTLS, the TCP
//! listener (with `TCP_NODELAY`) and the gRPC server, run until Terraform
//! calls `GRPCController.Shutdown`.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::proto::grpc::health::v1::health_server::HealthServer;
use crate::proto::plugin::grpc_controller_server::GrpcControllerServer;
use crate::proto::plugin::grpc_stdio_server::GrpcStdioServer;
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::provider::Provider;
use crate::server::{Controller, HealthService, ProviderService, Stdio};

/// go-plugin's magic cookie for Terraform providers: proof that the binary
/// was started by Terraform and not by a person.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
/// The expected value of [`MAGIC_COOKIE_KEY`].
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The plugin protocol major version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 6;
/// go-plugin's own handshake version (first field of the handshake line).
const CORE_PROTOCOL_VERSION: u32 = 1;
/// How long in-flight calls get to finish after `Shutdown`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why [`serve`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Started without the magic cookie, i.e. not by Terraform.
    #[error(
        "this binary is a Terraform plugin; it is not meant to be run directly, Terraform starts it"
    )]
    NotLaunchedByTerraform,
    /// Terraform does not offer protocol 6.
    #[error(
        "Terraform offers plugin protocol versions {0:?}; this provider needs 6 (Terraform 1.0+)"
    )]
    UnsupportedProtocol(String),
    /// Could not listen.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    /// AutoMTLS setup failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Writing the handshake line failed.
    #[error("cannot write the handshake line: {0}")]
    Handshake(std::io::Error),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
}

/// Logs panics without their payload (which may contain secrets) and
/// without a backtrace. The RPC layer turns the panic into a diagnostic.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".to_owned());
        tracing::error!(%location, "panic in provider code (message withheld)");
    }));
}

/// The handshake line go-plugin reads from the plugin's stdout.
pub fn handshake_line(addr: SocketAddr, server_cert_der: Option<&[u8]>) -> String {
    let cert = server_cert_der
        .map(|der| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der))
        .unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{cert}")
}

async fn bind() -> Result<TcpListener, ServeError> {
    let port = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u16>().ok());
    if let (Some(min), Some(max)) = (port("PLUGIN_MIN_PORT"), port("PLUGIN_MAX_PORT")) {
        let mut last_err = None;
        for p in min..=max {
            match TcpListener::bind((Ipv4Addr::LOCALHOST, p)).await {
                Ok(l) => return Ok(l),
                Err(e) => last_err = Some(e),
            }
        }
        return Err(ServeError::Listen(last_err.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "empty port range")
        })));
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(ServeError::Listen)
}

/// One accepted connection, with or without TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Accepts connections, sets `TCP_NODELAY` (gRPC's small frames otherwise
/// wait for Nagle's algorithm), runs the TLS handshake off the accept loop,
/// and hands finished connections to the gRPC server.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    out: mpsc::Sender<std::io::Result<Conn>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let out = out.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let conn = match tls {
                None => Conn::Plain(stream),
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => Conn::Tls(Box::new(s)),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            let _ = out.send(Ok(conn)).await;
        });
    }
}

/// Ignores Ctrl-C (the terminal sends it to Terraform and its plugins
/// alike; Terraform decides what to stop) and shuts down on SIGTERM.
fn watch_signals(shutdown: watch::Sender<bool>) {
    tokio::spawn(async move {
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            tracing::debug!("interrupt received; ignoring, Terraform will stop the provider");
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            tracing::debug!("SIGTERM received; shutting down");
            let _ = shutdown.send(true);
        }
    });
}

/// Serves `provider` to Terraform: checks the magic cookie, performs the
/// go-plugin handshake (AutoMTLS when Terraform asks for it), and answers
/// RPCs until Terraform calls `Shutdown` (or SIGTERM). Returns `Ok(())` on a
/// clean shutdown.
///
/// ```no_run
/// # struct MyProvider;
/// # #[tfplugin::async_trait]
/// # impl tfplugin::Provider for MyProvider {
/// #     type Config = tfplugin::NoConfig;
/// #     fn register(&self, _: &mut tfplugin::Registry) {}
/// #     async fn configure(&self, _: tfplugin::ConfigureRequest<tfplugin::NoConfig>) -> tfplugin::Result<()> { Ok(()) }
/// # }
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     match tfplugin::serve(MyProvider).await {
///         Ok(()) => std::process::ExitCode::SUCCESS,
///         Err(e) => {
///             eprintln!("{e}");
///             std::process::ExitCode::FAILURE
///         }
///     }
/// }
/// ```
pub async fn serve<P: Provider>(provider: P) -> Result<(), ServeError> {
    crate::logging::init_logging();
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        return Err(ServeError::NotLaunchedByTerraform);
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        let offered = versions
            .split(',')
            .any(|v| v.trim() == PROTOCOL_VERSION.to_string());
        if !offered {
            return Err(ServeError::UnsupportedProtocol(versions));
        }
    }
    install_panic_hook();

    let tls = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.trim().is_empty() => Some(crate::tls::auto_mtls(&pem)?),
        _ => None,
    };
    let listener = bind().await?;
    let addr = listener.local_addr().map_err(ServeError::Listen)?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let service = ProviderService::new(provider);
    let router = tonic::transport::Server::builder()
        .add_service(
            ProviderServer::new(service)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(GrpcControllerServer::new(Controller {
            shutdown: shutdown_tx.clone(),
        }))
        .add_service(GrpcStdioServer::new(Stdio {
            shutdown: shutdown_rx.clone(),
        }))
        .add_service(HealthServer::new(HealthService));

    let (conn_tx, conn_rx) = mpsc::channel(16);
    let acceptor = tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
    tokio::spawn(accept_loop(listener, acceptor, conn_tx));
    watch_signals(shutdown_tx);

    let line = handshake_line(addr, tls.as_ref().map(|t| t.server_cert_der.as_slice()));
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").map_err(ServeError::Handshake)?;
        stdout.flush().map_err(ServeError::Handshake)?;
    }
    tracing::debug!(%addr, tls = tls.is_some(), "plugin serving");

    let mut stop = shutdown_rx.clone();
    let server = router.serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    tokio::pin!(server);
    let mut stop = shutdown_rx;
    tokio::select! {
        result = &mut server => result?,
        _ = async {
            let _ = stop.wait_for(|s| *s).await;
            // Graceful shutdown is under way; bound how long it may take.
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("in-flight calls did not finish in time; exiting anyway"),
    }
    tracing::debug!("plugin stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_line_has_go_plugin_shape() {
        let addr: SocketAddr = "127.0.0.1:10001".parse().unwrap();
        assert_eq!(handshake_line(addr, None), "1|6|tcp|127.0.0.1:10001|grpc|");
        // Standard alphabet, no padding: 4 bytes would pad to "AQID/w==".
        assert_eq!(
            handshake_line(addr, Some(&[1, 2, 3, 255])),
            "1|6|tcp|127.0.0.1:10001|grpc|AQID/w"
        );
    }
}
