//! The go-plugin handshake of the example provider, without Terraform:
//! the handshake line, AutoMTLS pinning of the client certificate, ALPN h2,
//! and how long the handshake takes (printed; run with `--nocapture`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn provider_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let binary = profile_dir.join("examples").join("terraform-provider-echo");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo test -p tfplugin` (which builds examples) first",
        binary.display()
    );
    binary
}

struct ClientIdentity {
    pem: String,
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

fn client_identity() -> ClientIdentity {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let body: Vec<_> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c))
        .collect();
    ClientIdentity {
        pem: format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            body.join("\n")
        ),
        der: cert.der().clone(),
        key: key.serialize_der(),
    }
}

/// The plugin process; killed when dropped so a failing test leaves
/// nothing behind.
struct Plugin(Child);

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the plugin as Terraform would and reads its handshake line.
fn start(client_cert_pem: &str) -> (Plugin, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(provider_binary())
        .env(tfplugin::MAGIC_COOKIE_KEY, tfplugin::MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_CLIENT_CERT", client_cert_pem)
        .env_remove("PLUGIN_MIN_PORT")
        .env_remove("PLUGIN_MAX_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn provider");
    let stdout = child.stdout.take().expect("stdout");
    let plugin = Plugin(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("handshake line");
    (plugin, line.trim_end().to_owned(), started.elapsed())
}

/// Accepts exactly the certificate the plugin announced.
#[derive(Debug)]
struct AnnouncedCert(Vec<u8>);

impl ServerCertVerifier for AnnouncedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the announced certificate".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects with `identity` and reports whether the server answered the
/// HTTP/2 preface (i.e. accepted the client certificate).
async fn server_accepts(addr: &str, server_der: Vec<u8>, identity: &ClientIdentity) -> bool {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(rustls::ALL_VERSIONS)
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnnouncedCert(server_der)))
    .with_client_auth_cert(
        vec![identity.der.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone())),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(mut tls) = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    else {
        return false;
    };
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    if tls
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut frame_header = [0u8; 9];
    match tls.read_exact(&mut frame_header).await {
        // Frame type 4 is SETTINGS: the gRPC server is talking to us.
        Ok(_) => frame_header[3] == 4,
        Err(_) => false,
    }
}

#[tokio::test]
async fn handshake_announces_tls_and_only_terraforms_certificate_gets_in() {
    let terraform = client_identity();
    let (_plugin, line, elapsed) = start(&terraform.pem);
    eprintln!("handshake line after {elapsed:?}: {line}");

    let parts: Vec<_> = line.split('|').collect();
    assert_eq!(parts.len(), 6, "{line}");
    assert_eq!(&parts[..3], ["1", "6", "tcp"]);
    assert!(parts[3].starts_with("127.0.0.1:"), "{line}");
    assert_eq!(parts[4], "grpc");
    assert!(
        !parts[5].ends_with('='),
        "certificate must be unpadded base64"
    );
    let server_der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(parts[5])
        .expect("base64 certificate");

    let connect_started = Instant::now();
    assert!(server_accepts(parts[3], server_der.clone(), &terraform).await);
    eprintln!(
        "mTLS connect + first HTTP/2 frame: {:?}",
        connect_started.elapsed()
    );

    let stranger = client_identity();
    assert!(!server_accepts(parts[3], server_der, &stranger).await);
}

#[test]
fn refuses_to_run_without_the_magic_cookie() {
    let output = Command::new(provider_binary())
        .env_remove(tfplugin::MAGIC_COOKIE_KEY)
        .stdin(Stdio::null())
        .output()
        .expect("run provider");
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "nothing may look like a handshake"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("Terraform plugin"));
}
