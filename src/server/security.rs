//! Transport security and caller authentication.
//!
//! - TLS (rustls) with `--tls-cert`/`--tls-key`; with `--tls-client-ca` as
//!   well, mutual TLS: the handshake fails for a client without a
//!   certificate signed by one of those CAs.
//! - Bearer tokens (`--auth-token-file`, or `ARTICLE_ANALYZER_AUTH_TOKENS`)
//!   checked on `article_analyzer.v1.ArticleAnalyzer` only; health stays
//!   open for probes and reflection (the schema, no data) unless
//!   `--no-reflection`. A call without `authorization` gets UNAUTHENTICATED,
//!   a malformed one UNAUTHENTICATED, an unknown token PERMISSION_DENIED.
//!   Tokens are compared in constant time.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

use crate::config::SecurityConfig;

/// The server's TLS settings, or `None` for plaintext.
pub fn tls_config(config: &SecurityConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            if config.tls_client_ca.is_some() {
                anyhow::bail!("--tls-client-ca needs --tls-cert and --tls-key");
            }
            return Ok(None);
        }
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    };
    let identity = Identity::from_pem(read_certificates(cert)?, read_key(key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_certificates(ca)?));
    }
    Ok(Some(tls))
}

/// Reads a PEM file that must hold at least one well-formed certificate
/// (rustls' own PEM parser checks the base64 and the block labels), so a
/// wrong path or file fails at start-up with its name, not at the first
/// handshake.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.with_context(|| format!("{} holds a malformed PEM certificate", path.display()))?;
        count += 1;
    }
    if count == 0 {
        anyhow::bail!("{} holds no PEM CERTIFICATE", path.display());
    }
    Ok(pem)
}

/// Reads a PEM file that must hold a private key (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .with_context(|| format!("{} holds no usable PEM private KEY", path.display()))?;
    Ok(pem)
}

/// The accepted bearer tokens: the lines of `--auth-token-file` (blank lines
/// and `#` comments skipped) plus `ARTICLE_ANALYZER_AUTH_TOKENS`. Empty
/// when authentication is off; an auth source that yields no token is an
/// error, so a mistake cannot open the service by accident.
pub fn load_tokens(config: &SecurityConfig) -> anyhow::Result<Vec<String>> {
    let mut tokens: Vec<String> = Vec::new();
    if let Some(path) = &config.auth_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
        if tokens.is_empty() {
            anyhow::bail!("the token file {} holds no token", path.display());
        }
    }
    let from_env = config
        .auth_tokens
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty());
    tokens.extend(from_env.map(str::to_owned));
    if !config.auth_tokens.is_empty() && tokens.is_empty() {
        anyhow::bail!("ARTICLE_ANALYZER_AUTH_TOKENS holds no token");
    }
    if let Some(bad) = tokens.iter().find(|t| !is_token68ish(t)) {
        anyhow::bail!(
            "a bearer token holds a character a header cannot carry (it starts {:?})",
            bad.chars().take(4).collect::<String>()
        );
    }
    Ok(tokens)
}

/// Printable ASCII without spaces: what fits in `authorization: Bearer ...`.
fn is_token68ish(token: &str) -> bool {
    token.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks `authorization: Bearer <token>` on every call it guards; with no
/// tokens configured it lets every call through.
#[derive(Clone, Default)]
pub struct BearerAuth {
    tokens: Arc<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl BearerAuth {
    pub fn new(tokens: Vec<String>) -> Self {
        BearerAuth {
            tokens: Arc::new(tokens.into_iter().map(String::into_bytes).collect()),
        }
    }

    /// Whether any token is required.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The status a call with this `authorization` value gets, if refused.
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), Status> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(value) = authorization else {
            return Err(Status::unauthenticated(
                "missing credentials: send the header `authorization: Bearer <token>`",
            ));
        };
        let token = split_bearer(value).ok_or_else(|| {
            Status::unauthenticated("malformed authorization header: expected `Bearer <token>`")
        })?;
        // Compare with every token, without stopping at a match; each
        // comparison takes a time that depends only on the lengths.
        let mut accepted = subtle::Choice::from(0);
        for known in self.tokens.iter() {
            accepted |= known.as_slice().ct_eq(token);
        }
        if bool::from(accepted) {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "the bearer token is not accepted",
            ))
        }
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let value = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        self.check(value)?;
        Ok(request)
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750).
fn split_bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty() && token.iter().all(|b| b.is_ascii_graphic())).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn bearer_tokens_are_checked() {
        let auth = BearerAuth::new(vec!["s3cret-1".into(), "other_token".into()]);
        assert!(auth.check(Some(b"Bearer s3cret-1")).is_ok());
        assert!(auth.check(Some(b"bearer other_token")).is_ok());
        assert!(auth.check(Some(b"BEARER  s3cret-1 ")).is_ok());
        let code = |v: Option<&[u8]>| auth.check(v).unwrap_err().code();
        assert_eq!(code(None), Code::Unauthenticated);
        assert_eq!(code(Some(b"s3cret-1")), Code::Unauthenticated);
        assert_eq!(code(Some(b"Basic czNjcmV0LTE=")), Code::Unauthenticated);
        assert_eq!(code(Some(b"Bearer ")), Code::Unauthenticated);
        assert_eq!(code(Some(b"Bearer s3cret-2")), Code::PermissionDenied);
        assert_eq!(code(Some(b"Bearer s3cret-1x")), Code::PermissionDenied);
        assert_eq!(code(Some(b"Bearer s3cret-")), Code::PermissionDenied);
        assert!(BearerAuth::default().check(None).is_ok());
    }
}
