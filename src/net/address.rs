//! Addresses as people write them: `host`, `host:port`, `1.2.3.4:port`, `[::1]:port`, `::1`,
//! `:port`. Pure parsing; resolving and connecting are the rest of [`super`]'s business.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use thiserror::Error;

/// The port of the original chat program, used when an address gives none.
pub const DEFAULT_PORT: u16 = 12345;

/// A host and port as the user wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// A name, an IPv4 address, or an IPv6 address (without brackets); empty means "any".
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Why an address could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("invalid port {0:?} (expected a number from 0 to 65535)")]
    BadPort(String),
    #[error("invalid IPv6 address {0:?}")]
    BadIpv6(String),
    #[error(
        "ambiguous: is {port} a port? An IPv6 address with a port is written in brackets, \
         [{addr}]:{port}; the address alone as [{addr}:{port}]"
    )]
    AmbiguousIpv6 { addr: String, port: String },
    #[error("an IPv6 address with a port must be written in brackets, e.g. [{0}]:12345")]
    Ipv6NeedsBrackets(String),
    #[error("too many colons: write HOST:PORT (an IPv6 address with a port as [ADDR]:PORT)")]
    TooManyColons,
    #[error("a URL is not an address: give HOST:PORT, e.g. {0}")]
    Url(String),
    #[error("invalid host name {0:?}")]
    BadHost(String),
}

impl Address {
    /// Parses `host`, `host:port`, `1.2.3.4:port`, `[::1]:port`, `::1`, or `:port`.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| AddressError::BadIpv6(text.into()))?;
            ip.parse::<Ipv6Addr>()
                .map_err(|_| AddressError::BadIpv6(ip.into()))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => parse_port(
                    p.strip_prefix(':')
                        .ok_or_else(|| AddressError::BadPort(p.into()))?,
                )?,
            };
            return Ok(Address {
                host: ip.into(),
                port,
            });
        }
        if let Some((_, rest)) = text.split_once("://") {
            let hostport = rest.split('/').next().unwrap_or(rest);
            return Err(AddressError::Url(hostport.into()));
        }
        if text.parse::<IpAddr>().is_ok() {
            // `::1:5000` is a valid IPv6 address, but most likely meant `[::1]:5000`.
            if let Some((addr, port)) = text.rsplit_once(':')
                && addr.parse::<Ipv6Addr>().is_ok()
                && !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(AddressError::AmbiguousIpv6 {
                    addr: addr.into(),
                    port: port.into(),
                });
            }
            return Ok(Address {
                host: text.into(),
                port: DEFAULT_PORT,
            });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, _)) if host.parse::<Ipv6Addr>().is_ok() => {
                return Err(AddressError::Ipv6NeedsBrackets(host.into()));
            }
            Some((host, _)) if host.contains(':') => return Err(AddressError::TooManyColons),
            Some((host, port)) => (host, parse_port(port)?),
            None => (text, DEFAULT_PORT),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if !host.chars().all(valid) {
            return Err(AddressError::BadHost(host.into()));
        }
        Ok(Address {
            host: host.into(),
            port,
        })
    }
}

fn parse_port(text: &str) -> Result<u16, AddressError> {
    text.parse().map_err(|_| AddressError::BadPort(text.into()))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(host: &str, port: u16) -> Address {
        Address {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn accepted_address_forms() {
        assert_eq!(Address::parse("example.org"), Ok(a("example.org", 12345)));
        assert_eq!(Address::parse("example.org:80"), Ok(a("example.org", 80)));
        assert_eq!(Address::parse("1.2.3.4:9"), Ok(a("1.2.3.4", 9)));
        assert_eq!(Address::parse("1.2.3.4"), Ok(a("1.2.3.4", 12345)));
        assert_eq!(Address::parse("[::1]:4000"), Ok(a("::1", 4000)));
        assert_eq!(Address::parse("[::1]"), Ok(a("::1", 12345)));
        assert_eq!(Address::parse("::1"), Ok(a("::1", 12345)));
        assert_eq!(Address::parse("127.0.0.1:0"), Ok(a("127.0.0.1", 0)));
        assert_eq!(Address::parse(":4000"), Ok(a("", 4000)));
        assert_eq!(Address::parse(" localhost "), Ok(a("localhost", 12345)));
    }

    #[test]
    fn rejected_address_forms() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(
            Address::parse("host:http"),
            Err(AddressError::BadPort("http".into()))
        );
        assert_eq!(
            Address::parse("host:65536"),
            Err(AddressError::BadPort("65536".into()))
        );
        assert_eq!(
            Address::parse("host:"),
            Err(AddressError::BadPort("".into()))
        );
        assert_eq!(
            Address::parse("fe80::1:99999"),
            Err(AddressError::Ipv6NeedsBrackets("fe80::1".into()))
        );
        assert_eq!(
            Address::parse("::1:5000"),
            Err(AddressError::AmbiguousIpv6 {
                addr: "::1".into(),
                port: "5000".into()
            })
        );
        assert_eq!(
            Address::parse("1.2.3.4:5:6"),
            Err(AddressError::TooManyColons)
        );
        assert_eq!(
            Address::parse("http://127.0.0.1:8000/x"),
            Err(AddressError::Url("127.0.0.1:8000".into()))
        );
        // Still plain addresses.
        assert_eq!(Address::parse("fe80::1"), Ok(a("fe80::1", 12345)));
        assert_eq!(
            Address::parse("2001:db8::abcd"),
            Ok(a("2001:db8::abcd", 12345))
        );
        assert!(matches!(
            Address::parse("[nonsense]:1"),
            Err(AddressError::BadIpv6(_))
        ));
        assert!(matches!(
            Address::parse("[::1]x"),
            Err(AddressError::BadPort(_))
        ));
        assert!(matches!(
            Address::parse("a b:1"),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            Address::parse("x/y"),
            Err(AddressError::BadHost(_))
        ));
    }

    #[test]
    fn display_brackets_ipv6() {
        assert_eq!(a("::1", 5).to_string(), "[::1]:5");
        assert_eq!(a("h", 5).to_string(), "h:5");
    }
}
