//! TLS, as an option: the certificates and keys of the listeners, and the roots outgoing
//! `https://` requests trust (rustls, with ring as the crypto provider).
//!
//! - [`acceptor`]: a listener's TLS from a PEM certificate chain and a PEM private key
//!   (`--tls-cert/--tls-key`, `--admin-tls-cert/--admin-tls-key`).
//! - [`client_config`]: what `https://` URLs are checked against: the PEM certificates of
//!   a CA file (`--origin-ca`, `--ca`) only, or, without one, the system's roots.
//!
//! Every PEM file is read with a cap ([`PEM_BYTES_MAX`], `sovereign_wire::input`) and
//! errors name the file and the flag that named it. TLS 1.2 and 1.3 with rustls' safe
//! defaults; HTTP/1.1 is offered by ALPN.
//!
//! Map: [`TlsFiles`], [`acceptor`], [`client_config`], [`TlsError`], [`PEM_BYTES_MAX`].
//!
//! Not covered: client certificates (mutual TLS), reloading certificates without a
//! restart, certificate issuance (ACME).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sovereign_wire::input::{InputError, read_capped};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest certificate, key or CA file read, bytes.
pub const PEM_BYTES_MAX: u64 = 1 << 20;

/// A listener's certificate chain and key, with the flags that named them (for errors).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The flag that named `cert` (e.g. `--tls-cert`).
    pub cert_flag: &'static str,
    /// The flag that named `key`.
    pub key_flag: &'static str,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, too large).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A file's PEM did not hold what it should.
    #[error("{file}: {flag}: {reason}")]
    Pem {
        /// The file.
        file: String,
        /// The flag that named it.
        flag: String,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("{what}: {reason}")]
    Config {
        /// Which configuration.
        what: String,
        /// rustls' reason.
        reason: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of the PEM file at `path` (named by `flag`): at least one.
fn certificates(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_capped(path, PEM_BYTES_MAX, &format!("{flag} file"))?;
    let bad = |reason: String| TlsError::Pem {
        file: path.display().to_string(),
        flag: flag.to_string(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("{e}; expected PEM certificates")))?;
    if certs.is_empty() {
        return Err(bad(
            "no certificate; expected one or more PEM blocks `-----BEGIN CERTIFICATE-----`".into(),
        ));
    }
    Ok(certs)
}

/// A listener's TLS from `files`. HTTP/1.1 is offered by ALPN.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let chain = certificates(&files.cert, files.cert_flag)?;
    let key_pem = read_capped(
        &files.key,
        PEM_BYTES_MAX,
        &format!("{} file", files.key_flag),
    )?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        file: files.key.display().to_string(),
        flag: files.key_flag.to_string(),
        reason: format!(
            "{e}; expected a PEM private key (`-----BEGIN PRIVATE KEY-----`, RSA or EC)"
        ),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| TlsError::Config {
            what: format!(
                "{} {} with {} {}",
                files.cert_flag,
                files.cert.display(),
                files.key_flag,
                files.key.display()
            ),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What outgoing `https://` requests trust: the certificates in `ca` (a PEM file, named
/// by `flag`) only, or without it the system's roots. When none can be loaded, every
/// `https://` request fails verification; with `https_used` that is logged as a warning.
pub fn client_config(
    ca: Option<&Path>,
    flag: &str,
    https_used: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path, flag)? {
                roots.add(cert).map_err(|e| TlsError::Pem {
                    file: path.display().to_string(),
                    flag: flag.to_string(),
                    reason: format!("{e}; expected a CA certificate"),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "loading the system's root certificates");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 && https_used {
                tracing::warn!(
                    "no system root certificates found: https:// URLs will fail verification; pass {flag} FILE"
                );
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            what: "TLS client".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
