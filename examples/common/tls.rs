//! TLS configuration for the examples: PEM files loaded with
//! rustls-pki-types' `PemObject`, errors that name the file.

use std::{path::Path, sync::Arc};

use asyncproto::rustls::{
    self, ClientConfig, RootCertStore, ServerConfig,
    pki_types::{
        CertificateDer, PrivateKeyDer,
        pem::{self, PemObject},
    },
    server::WebPkiClientVerifier,
};

/// Every certificate in the PEM file at `path`, in file order (for a chain:
/// the leaf, then the intermediates).
///
/// # Errors
///
/// The file cannot be read, holds a malformed PEM section, or holds no
/// `CERTIFICATE` at all.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate (BEGIN CERTIFICATE) in {}",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key in the PEM file at `path`: PKCS#8 (`BEGIN PRIVATE
/// KEY`), as `openssl req -noenc` writes; PKCS#1 and SEC1 keys work too.
///
/// # Errors
///
/// The file cannot be read or holds no private key.
pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            format!("no private key (BEGIN PRIVATE KEY) in {}", path.display())
        }
        e => format!("cannot read a private key from {}: {e}", path.display()),
    })
}

/// A root store holding every certificate of the PEM file at `path`.
///
/// # Errors
///
/// As [`load_certs`], or a certificate that is not a usable trust anchor.
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// A server configuration (TLS 1.2 and 1.3, `rustls`' defaults) that sends
/// the whole chain of `cert` with the key in `key`; with `client_ca`, it
/// requires a client certificate signed by one of the CAs in that file.
///
/// # Errors
///
/// Any file error, or a key that does not match the leaf certificate.
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let builder = ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder(Arc::new(load_roots(ca)?))
                .build()
                .map_err(|e| format!("cannot use {} as client CA: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key_der).map_err(|e| {
        format!(
            "cannot use certificate {} with key {}: {e}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts the CAs in `ca` (verification on:
/// there is no switch to turn it off) and, given `identity` (certificate
/// chain, key), presents that client certificate.
///
/// # Errors
///
/// Any file error, or a key that does not match the client certificate.
pub(crate) fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder().with_root_certificates(load_roots(ca)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e: rustls::Error| {
                format!(
                    "cannot use certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?,
    };
    Ok(Arc::new(config))
}
