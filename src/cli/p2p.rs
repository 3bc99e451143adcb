//! The command line of the iroh transport: `--p2p` and its options on `listen`/`dial`, and
//! `schat relay`.

use super::Paths;
use crate::error::{Error, Result};
use crate::net::relay::{RelayOptions, RelayTls};
use crate::net::{P2pOptions, Relays};
use crate::signals::Interrupts;
use crate::ui::Ui;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// How to use iroh (with `listen --p2p`, or when dialling a ticket that has an iroh address).
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "NAT options (iroh)")]
pub struct P2pArgs {
    /// Your iroh relay: an https:// (or, for tests and LANs, http://) URL such as `schat
    /// relay` prints, or `none` for direct UDP only. It learns that your endpoint is online,
    /// from which IP, and how much traffic flows; never content or schat keys. (A listener is
    /// always reached through the relay its ticket names; this chooses your own.) [default:
    /// listening, iroh's public relays; dialling, the ticket's relay]
    #[arg(long, value_name = "URL|none", hide_short_help = true)]
    pub relay: Option<String>,
    /// Trust the certificates in this PEM file for the relay (a self-hosted relay with its
    /// own CA), besides the usual public roots
    #[arg(long, value_name = "FILE", hide_short_help = true)]
    pub relay_ca: Option<PathBuf>,
    /// Bind iroh's UDP socket here only (e.g. 127.0.0.1:0) [default: all interfaces]
    #[arg(long, value_name = "IP:PORT", hide_short_help = true)]
    pub p2p_bind: Option<SocketAddr>,
    /// Do not ask the home router for a port mapping (UPnP, PCP, NAT-PMP)
    #[arg(long, hide_short_help = true)]
    pub no_portmap: bool,
    /// Listening: use a new iroh endpoint id for this run. By default a listener's id is
    /// derived from your identity, so its ticket stays good across restarts, but the relay
    /// (and anyone holding an old ticket) can tell it is you again
    #[arg(long, hide_short_help = true)]
    pub ephemeral_endpoint: bool,
    /// Dialling: use the endpoint id derived from your identity (a relay with
    /// --allow-endpoint needs it). By default each dial uses a fresh one, so that neither the
    /// listener's endpoint nor its relay can recognise you before the handshake proves who
    /// they are
    #[arg(long, conflicts_with = "ephemeral_endpoint", hide_short_help = true)]
    pub stable_endpoint: bool,
}

impl P2pArgs {
    /// Whether any iroh option was given.
    pub fn any(&self) -> bool {
        self.relay.is_some()
            || self.relay_ca.is_some()
            || self.p2p_bind.is_some()
            || self.no_portmap
            || self.ephemeral_endpoint
            || self.stable_endpoint
    }

    /// The options for listening (`dialing` false) or dialling.
    pub fn options(&self, dialing: bool) -> Result<P2pOptions> {
        if self.stable_endpoint && !dialing {
            return Err(Error::Usage(
                "--stable-endpoint is for dialling: a listener's endpoint is stable unless \
                 --ephemeral-endpoint"
                    .into(),
            ));
        }
        let relays = match self.relay.as_deref() {
            None => Relays::Default,
            Some("none") => Relays::Disabled,
            Some(url) if crate::invite::ticket::relay_url_ok(url) => {
                Relays::Custom(vec![url.to_string()])
            }
            Some(url) => {
                return Err(Error::Usage(format!(
                    "--relay {:?}: give an https:// or http:// URL, or none",
                    crate::sanitize::line(url)
                )));
            }
        };
        Ok(P2pOptions {
            relays,
            relay_ca: self.relay_ca.clone(),
            bind: self.p2p_bind,
            portmap: !self.no_portmap,
            ephemeral: match dialing {
                true => !self.stable_endpoint,
                false => self.ephemeral_endpoint,
            },
        })
    }
}

/// `schat relay`.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// Where to serve: IP:PORT [default: [::]:443, or 127.0.0.1:3340]
    ///
    /// [::]:443 with TLS; 127.0.0.1:3340 with --insecure-http
    #[arg(value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
    /// TLS certificate chain (PEM), re-read daily
    ///
    /// For example from certbot; re-read daily, so renewals apply
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "acme_domain"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Get a Let's Encrypt certificate for this domain
    ///
    /// TLS-ALPN-01: the relay must be reachable on port 443 of that name
    #[arg(long, value_name = "DOMAIN")]
    pub acme_domain: Option<String>,
    /// Contact e-mail for Let's Encrypt
    #[arg(long, value_name = "EMAIL", requires = "acme_domain")]
    pub acme_contact: Option<String>,
    /// Use Let's Encrypt's staging service (for trying the setup out)
    #[arg(long, requires = "acme_domain", hide_short_help = true)]
    pub acme_staging: bool,
    /// Plain HTTP, no TLS: for tests and closed LANs only
    ///
    /// Endpoints then learn no public address from the relay, which weakens hole punching
    #[arg(long, conflicts_with_all = ["tls_cert", "acme_domain"])]
    pub insecure_http: bool,
    /// Only relay for these endpoint ids (repeatable)
    ///
    /// `schat fingerprint --endpoint` prints yours. Without it, any endpoint may use the
    /// relay
    #[arg(long = "allow-endpoint", value_name = "ID")]
    pub allow_endpoint: Vec<String>,
    /// UDP port for QUIC address discovery (with TLS), which tells endpoints their public
    /// address. Endpoints ask on 7842 only: use another port only behind a forward of public
    /// UDP 7842 to it
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = crate::net::relay::QAD_PORT,
        hide_short_help = true
    )]
    pub qad_port: u16,
    #[command(flatten)]
    pub files: super::paths::HomeArgs,
}

/// Runs `schat relay` until a signal.
pub async fn relay(args: RelayArgs, paths: &Paths, ui: &Ui) -> Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key, &args.acme_domain) {
        _ if args.insecure_http => RelayTls::InsecureHttp,
        (Some(cert), Some(key), _) => RelayTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, Some(domain)) => RelayTls::Acme {
            domain: domain.clone(),
            contact: args.acme_contact.clone(),
            cache: paths.home.join("acme"),
            staging: args.acme_staging,
        },
        _ => {
            return Err(Error::Usage(
                "a relay needs TLS: --tls-cert FILE --tls-key FILE, or --acme-domain DOMAIN \
                 (or --insecure-http, for tests and closed LANs)"
                    .into(),
            ));
        }
    };
    let addr = args.addr.unwrap_or_else(|| match tls {
        RelayTls::InsecureHttp => SocketAddr::from(([127, 0, 0, 1], 3340)),
        _ => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 443)),
    });
    let allow = match args.allow_endpoint.is_empty() {
        true => None,
        false => {
            let mut ids = HashSet::new();
            for text in &args.allow_endpoint {
                let id = text.trim().parse::<iroh::EndpointId>().map_err(|_| {
                    Error::Usage(format!(
                        "--allow-endpoint {:?}: not an endpoint id (64 hex digits)",
                        crate::sanitize::line(text)
                    ))
                })?;
                ids.insert(id);
            }
            Some(ids)
        }
    };
    let options = RelayOptions {
        addr,
        tls,
        qad_port: args.qad_port,
        allow,
    };
    let mut interrupts =
        Interrupts::install().map_err(|e| Error::io("installing signal handlers", e))?;
    crate::net::relay::run(&options, ui, async move {
        let name = interrupts.recv().await;
        let _ = name;
    })
    .await
}
