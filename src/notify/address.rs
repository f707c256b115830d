//! Which webhook URLs we call: http(s) only, and (unless `WEBHOOK_ALLOW_PRIVATE`) never an
//! address inside the server's own networks. Checked when a webhook is registered, and again by
//! the resolver every delivery connects through, so a name that later resolves to a private
//! address (DNS rebinding) is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::error::AppError;

pub const NOT_PUBLIC: &str = "Webhook URL must be a public http(s) address";
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Parses a webhook URL: http or https, with a host. The validation message names the field.
pub fn parse(raw: &str) -> Option<Url> {
    let url = Url::parse(raw.trim()).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none();
    ok.then_some(url)
}

/// Refuses a URL whose host is, or resolves to, an address that is not public. A name that does
/// not resolve now is accepted: the delivery's resolver checks it again when it does.
pub async fn check_public(url: &Url, allow_private: bool) -> Result<(), AppError> {
    if allow_private {
        return Ok(());
    }
    let refused = || AppError::bad_request(NOT_PUBLIC);
    match url.host() {
        Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(refused()),
        Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(refused()),
        Some(url::Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            // A resolver that does not answer in time proves nothing either way.
            let lookup =
                tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, port)));
            match lookup
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
            {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    if addrs.iter().any(|a| !is_public(a.ip())) {
                        Err(refused())
                    } else {
                        Ok(())
                    }
                }
                Err(_) => Ok(()),
            }
        }
        Some(_) => Ok(()),
        None => Err(refused()),
    }
}

/// Whether an IP literal in a URL may be called (the resolver never sees literals).
pub fn literal_allowed(url: &Url, allow_private: bool) -> bool {
    allow_private
        || match url.host() {
            Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
            _ => true,
        }
}

/// Global unicast only: not loopback, private, shared (CGNAT), link-local, unspecified,
/// broadcast, multicast or documentation space, in either IP version.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        public_v4(Ipv4Addr::new(a, b, c, d))
    };
    match s {
        // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d) addresses reach an IPv4 one.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] | [0, 0, 0, 0, 0, 0, high, low] => {
            return embedded(high, low)
        }
        // 6to4 (2002::/16) carries its IPv4 address in the next 32 bits.
        [0x2002, high, low, ..] => return embedded(high, low),
        // Teredo (2001::/32) tunnels to addresses we cannot see.
        [0x2001, 0, ..] => return false,
        _ => {}
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || s[0] == 0x2001 && s[1] == 0x0db8)
}

/// The resolver of the delivery client: the system's, minus every address that is not public.
/// A name left with no address fails to connect, and the attempt records why.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(NOT_PUBLIC.into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::101:101",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as private");
        }
    }

    #[test]
    fn only_http_and_https_urls_with_a_host() {
        assert!(parse("https://example.com/hooks").is_some());
        assert!(parse("http://127.0.0.1:8080/x").is_some());
        assert!(parse("ftp://example.com/").is_none());
        assert!(parse("example.com/hooks").is_none());
        assert!(parse("https://user:pw@example.com/").is_none());
        assert!(parse("javascript:alert(1)").is_none());
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_unless_allowed() {
        for raw in [
            "http://127.0.0.1/x",
            "http://localhost:9/x",
            "http://[::1]/x",
        ] {
            let url = parse(raw).unwrap();
            assert!(check_public(&url, false).await.is_err(), "{raw} accepted");
            assert!(
                check_public(&url, true).await.is_ok(),
                "{raw} refused when allowed"
            );
        }
    }
}
