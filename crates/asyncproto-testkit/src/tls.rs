//! A throw-away PKI for TLS tests, made with rcgen at run time.
//!
//! No private key is ever committed: every test run generates its own CA
//! (ECDSA P-256), a server leaf for `localhost`, `127.0.0.1` and `::1`
//! signed by it, and a client leaf for mutual TLS. [`TestPki::write_pem`]
//! writes them to a directory for external peers (Python's `ssl`,
//! `openssl s_client`, the `echo_server` example).

use std::{io, path::Path, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    server::WebPkiClientVerifier,
};

/// A certificate and its PKCS#8 private key.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub key_pem: String,
}

impl Identity {
    /// The private key for `rustls`.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A CA, a server certificate and a client certificate it signed.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA's certificate (self-signed) and key.
    pub ca: Identity,
    /// The server's leaf: SANs `DNS:localhost`, `IP:127.0.0.1`, `IP:::1`.
    pub server: Identity,
    /// A client's leaf (CN `asyncproto test client`), for mutual TLS.
    pub client: Identity,
}

fn identity(cert: &rcgen::Certificate, key: &KeyPair) -> Identity {
    Identity {
        cert: cert.der().clone(),
        cert_pem: cert.pem(),
        key_der: key.serialize_der(),
        key_pem: key.serialize_pem(),
    }
}

impl TestPki {
    /// Generates a fresh PKI.
    ///
    /// # Panics
    ///
    /// If rcgen fails to generate a key or sign a certificate (it does not
    /// with these fixed parameters).
    pub fn new() -> Self {
        Self::with_ca_name("asyncproto test CA")
    }

    /// A fresh PKI whose CA has this common name (two PKIs with different
    /// names do not trust each other's certificates).
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn with_ca_name(ca_name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key_copy = KeyPair::try_from(ca_key.serialize_der()).expect("CA key copy");
        let issuer = CertifiedIssuer::self_signed(ca_params, ca_key_copy).expect("CA cert");
        let ca = identity(issuer.as_ref(), &ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params.signed_by(&server_key, &issuer).expect("server cert");
        let server = identity(&server_cert, &server_key);

        let client_key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "asyncproto test client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = params.signed_by(&client_key, &issuer).expect("client cert");
        let client = identity(&client_cert, &client_key);
        Self { ca, server, client }
    }

    /// A root store holding this PKI's CA.
    ///
    /// # Panics
    ///
    /// Never with a generated CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.cert.clone()).expect("CA certificate");
        roots
    }

    /// The server's chain as it sends it: leaf, then the CA.
    pub fn server_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.server.cert.clone(), self.ca.cert.clone()]
    }

    /// A server configuration with the server certificate, no client
    /// authentication.
    ///
    /// # Panics
    ///
    /// Never with a generated PKI.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::new(
            ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(self.server_chain(), self.server.key())
                .expect("server config"),
        )
    }

    /// A server configuration that requires a client certificate signed by
    /// this PKI's CA (mutual TLS).
    ///
    /// # Panics
    ///
    /// Never with a generated PKI.
    pub fn mtls_server_config(&self) -> Arc<ServerConfig> {
        let verifier = WebPkiClientVerifier::builder(Arc::new(self.roots()))
            .build()
            .expect("client verifier");
        Arc::new(
            ServerConfig::builder()
                .with_client_cert_verifier(verifier)
                .with_single_cert(self.server_chain(), self.server.key())
                .expect("mTLS server config"),
        )
    }

    /// A client configuration that trusts this PKI's CA, without a client
    /// certificate.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(self.roots())
                .with_no_client_auth(),
        )
    }

    /// A client configuration that trusts this PKI's CA and presents the
    /// client certificate.
    ///
    /// # Panics
    ///
    /// Never with a generated PKI.
    pub fn mtls_client_config(&self) -> Arc<ClientConfig> {
        Arc::new(
            ClientConfig::builder()
                .with_root_certificates(self.roots())
                .with_client_auth_cert(vec![self.client.cert.clone()], self.client.key())
                .expect("mTLS client config"),
        )
    }

    /// Writes `ca.pem`, `server.pem` (leaf then CA), `server.key`,
    /// `client.pem` and `client.key` into `dir`.
    ///
    /// # Errors
    ///
    /// Any error writing the files.
    pub fn write_pem(&self, dir: &Path) -> io::Result<()> {
        std::fs::write(dir.join("ca.pem"), &self.ca.cert_pem)?;
        std::fs::write(
            dir.join("server.pem"),
            format!("{}{}", self.server.cert_pem, self.ca.cert_pem),
        )?;
        std::fs::write(dir.join("server.key"), &self.server.key_pem)?;
        std::fs::write(dir.join("client.pem"), &self.client.cert_pem)?;
        std::fs::write(dir.join("client.key"), &self.client.key_pem)?;
        Ok(())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
