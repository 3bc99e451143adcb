//! `schat relay`: iroh's relay server, self-hosted with one command. A relay forwards
//! encrypted QUIC packets between endpoints that cannot reach each other directly and helps
//! them punch holes; it never sees schat keys or content (see README "What a relay sees").
//!
//! TLS comes from certificate files (reloaded daily, so a renewed certificate is picked up) or
//! from Let's Encrypt (ACME, TLS-ALPN-01 on port 443). Plain HTTP only when asked for: for
//! tests and closed LANs. With TLS, the relay also answers QUIC address discovery (QAD) on UDP,
//! which tells endpoints their public address and makes hole punching work across NATs.

use crate::error::{Error, Result};
use crate::ui::Ui;
use iroh_relay::server::{
    Access, AccessControl, AcmeConfig, CertConfig, ClientRequest, QuicConfig, RelayConfig, Server,
    ServerConfig, TlsConfig,
};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the relay gets its certificate.
#[derive(Debug, Clone)]
pub enum RelayTls {
    /// Plain HTTP (no QAD: endpoints learn no public address from this relay).
    InsecureHttp,
    /// A certificate chain and key in PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Let's Encrypt for `domain` (production unless `staging`), cached in `cache`.
    Acme {
        domain: String,
        contact: Option<String>,
        cache: PathBuf,
        staging: bool,
    },
}

/// The UDP port iroh clients ask for QUIC address discovery (the only one they ask).
pub const QAD_PORT: u16 = iroh_relay::defaults::DEFAULT_RELAY_QUIC_PORT;

/// What `schat relay` was asked to do.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The relay's HTTP(S) address.
    pub addr: SocketAddr,
    pub tls: RelayTls,
    /// The UDP port for QUIC address discovery (with TLS only).
    pub qad_port: u16,
    /// When set, only these endpoint ids may use the relay.
    pub allow: Option<HashSet<iroh::EndpointId>>,
}

/// Admits only the endpoints on the list. The endpoint id is proven by the relay handshake.
#[derive(Debug)]
struct Allowlist(HashSet<iroh::EndpointId>);

impl AccessControl for Allowlist {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        match self.0.contains(&request.endpoint_id()) {
            true => Access::Allow,
            false => Access::Deny {
                reason: Some("this relay admits listed endpoints only".into()),
            },
        }
    }
}

/// Runs the relay until `stop` resolves (a signal) or the server fails.
pub async fn run(
    options: &RelayOptions,
    ui: &Ui,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let mut relay = RelayConfig::new(options.addr);
    let tls_on = !matches!(options.tls, RelayTls::InsecureHttp);
    if tls_on {
        // With TLS, `addr` is the HTTPS relay. iroh-relay also opens a plain-HTTP listener that
        // answers captive-portal checks only (`/generate_204`); it gets any free port on the
        // same IP rather than port 80 (clients probe port 80, find nothing, and carry on).
        let cert = cert_config(&options.tls).await?;
        relay = RelayConfig::new(SocketAddr::new(options.addr.ip(), 0));
        relay.tls = Some(TlsConfig::new(options.addr, cert));
    }
    if let Some(allow) = &options.allow {
        relay.access = Arc::new(Allowlist(allow.clone()));
    }
    let mut config = ServerConfig::default();
    config.relay = Some(relay);
    if tls_on {
        config.quic = Some(QuicConfig::new(SocketAddr::new(
            options.addr.ip(),
            options.qad_port,
        )));
    }
    let mut server = Server::spawn(config)
        .await
        .map_err(|e| Error::Network(format!("cannot start the relay: {e}")))?;
    match (server.https_addr(), server.http_addr()) {
        (Some(https), _) => {
            let host = match &options.tls {
                RelayTls::Acme { domain, .. } => domain.clone(),
                _ => https.ip().to_string(),
            };
            ui.status(format_args!(
                "relay on https {https}: use --relay https://{host}:{}/",
                https.port()
            ));
        }
        (None, Some(http)) => {
            ui.status(format_args!(
                "relay on http {http} (no TLS: tests and closed LANs only)"
            ));
            ui.status(format_args!("use --relay http://{http}/"));
        }
        (None, None) => return Err(Error::Internal("the relay bound no address".into())),
    }
    if let (Some(_), Some(http)) = (server.https_addr(), server.http_addr()) {
        ui.status(format_args!(
            "captive-portal checks (/generate_204 only) on http {http}"
        ));
    }
    if let Some(quic) = server.quic_addr() {
        ui.status(format_args!("QUIC address discovery on udp {quic}"));
        // iroh clients ask an https relay for address discovery on its standard port only:
        // the relay URL has no place for another one.
        if quic.port() != QAD_PORT {
            ui.warn(format_args!(
                "endpoints ask for QUIC address discovery on udp port {QAD_PORT} only: forward \
                 public udp {QAD_PORT} to port {}, or endpoints behind NAT learn no public \
                 address from this relay (hole punching then fails more often)",
                quic.port()
            ));
        }
    }
    match &options.allow {
        Some(allow) => ui.status(format_args!("admitting {} listed endpoints", allow.len())),
        None => ui.status("admitting any endpoint"),
    }
    let failed = tokio::select! {
        () = stop => None,
        joined = server.join() => Some(joined),
    };
    if let Some(joined) = failed {
        return Err(Error::Network(match joined {
            Ok(Ok(())) => "the relay stopped".into(),
            Ok(Err(e)) => format!("the relay failed: {e}"),
            Err(e) => format!("the relay failed: {e}"),
        }));
    }
    ui.status("stopping the relay");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server.shutdown()).await;
    Ok(())
}

async fn cert_config(tls: &RelayTls) -> Result<CertConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Internal(format!("TLS: {e}")))?
    .with_no_client_auth();
    Ok(match tls {
        RelayTls::InsecureHttp => return Err(Error::Internal("no TLS to configure".into())),
        RelayTls::Files { cert, key } => {
            // Read once now, so that a wrong path or a bad file is an error at start.
            let _ = super::iroh::load_certs(cert)?;
            load_key(key)?;
            let resolver = iroh_relay::server::reloading_resolver(
                builder.crypto_provider(),
                cert.clone(),
                key.clone(),
                iroh_relay::server::DEFAULT_CERT_RELOAD_INTERVAL,
            )
            .await
            .map_err(|e| Error::Usage(format!("the certificate or its key: {e}")))?;
            CertConfig::Manual {
                server_config: builder.with_cert_resolver(resolver),
            }
        }
        RelayTls::Acme {
            domain,
            contact,
            cache,
            staging,
        } => {
            let mut acme = AcmeConfig::letsencrypt(!staging)
                .domains(vec![domain.clone()])
                .cache_path(cache.clone());
            if let Some(contact) = contact {
                acme = acme.contact(vec![format!("mailto:{contact}")]);
            }
            CertConfig::LetsEncrypt {
                acme_config: acme,
                server_config_builder: builder,
            }
        }
    })
}

fn load_key(path: &std::path::Path) -> Result<()> {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    PrivateKeyDer::from_pem_file(path)
        .map(drop)
        .map_err(|e| Error::Usage(format!("{}: no usable private key: {e}", path.display())))
}
