//! go-plugin AutoMTLS: Terraform passes its client certificate in
//! `PLUGIN_CLIENT_CERT`; the plugin answers with a fresh self-signed server
//! certificate in the handshake line, and accepts only connections that
//! present exactly Terraform's certificate.
//!
//! Terraform's key is ECDSA P-521, which the ring provider cannot verify,
//! so those handshake signatures are checked with the `p521` crate.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::DistinguishedName;
use rustls::SignatureScheme;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `PLUGIN_CLIENT_CERT` is not a PEM certificate.
    #[error("PLUGIN_CLIENT_CERT is not a PEM certificate: {0}")]
    ClientCert(String),
    /// Generating the server certificate failed.
    #[error("cannot generate the server certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS server configuration plus the certificate to announce.
pub(crate) struct AutoMtls {
    pub config: Arc<rustls::ServerConfig>,
    /// DER of the server certificate, for the handshake line.
    pub server_cert_der: Vec<u8>,
}

/// Builds the AutoMTLS server side for the PEM client certificate.
pub(crate) fn auto_mtls(client_cert_pem: &str) -> Result<AutoMtls, TlsError> {
    let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| TlsError::ClientCert(e.to_string()))?;

    // What go-plugin's own certificates look like: localhost, usable for
    // both ends, self-signed (so the host can use it as its root).
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "tfplugin");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    // rcgen's default validity (1975 to 4096) outlives any plugin process.
    let cert = params.self_signed(&key)?;
    let server_cert_der = cert.der().to_vec();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedClientCert {
        expected: client_cert.into_owned(),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    // grpc-go requires ALPN h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(AutoMtls {
        config: Arc::new(config),
        server_cert_der,
    })
}

/// Accepts exactly one client certificate (byte for byte) and checks the
/// handshake signature made with its key.
#[derive(Debug)]
struct PinnedClientCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedClientCert {
    fn verify_p521(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        use p521::ecdsa::signature::Verifier;
        use p521::pkcs8::DecodePublicKey;
        let bad = |what: &str| {
            rustls::Error::General(format!("client certificate P-521 signature: {what}"))
        };
        let parsed =
            webpki::EndEntityCert::try_from(cert).map_err(|_| bad("unparsable certificate"))?;
        let spki = parsed.subject_public_key_info();
        let public_key = p521::PublicKey::from_public_key_der(spki.as_ref())
            .map_err(|_| bad("not a P-521 key"))?;
        let verifying_key = p521::ecdsa::VerifyingKey::from_affine(*public_key.as_affine())
            .map_err(|_| bad("invalid key"))?;
        let signature = p521::ecdsa::Signature::from_der(dss.signature())
            .map_err(|_| bad("malformed signature"))?;
        verifying_key
            .verify(message, &signature)
            .map_err(|_| bad("signature does not verify"))?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            return self.verify_p521(message, cert, dss);
        }
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            return self.verify_p521(message, cert, dss);
        }
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = self.algorithms.supported_schemes();
        schemes.push(SignatureScheme::ECDSA_NISTP521_SHA512);
        schemes
    }
}
