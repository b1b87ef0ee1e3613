//! Which callback URLs may be called: http(s) only, a host on the allow-list, and (unless
//! `allow_private_addresses`) only public addresses, checked on the address the name
//! resolves to at delivery, so that an allowed name pointing at the metadata service or the
//! LAN is still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

use crate::config::WebhooksConfig;

/// Longest callback URL taken.
const MAX_URL: usize = 2048;

/// The URL, parsed, when the policy allows it; else why not, in words for the client.
pub fn check_url(config: &WebhooksConfig, raw: &str) -> Result<Url, String> {
    if !config.enabled() {
        return Err("webhooks are off on this server (webhooks.allow_hosts is empty)".into());
    }
    if raw.len() > MAX_URL {
        return Err(format!("a callback URL is at most {MAX_URL} bytes"));
    }
    let url = Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("callbacks are http or https, not {}", url.scheme()));
    }
    let host = url.host().ok_or_else(|| format!("`{raw}` names no host"))?;
    let name = match &host {
        Host::Domain(name) => name.to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    if !config
        .allow_hosts
        .iter()
        .any(|allowed| host_matches(allowed, &name))
    {
        return Err(format!(
            "host `{name}` is not one webhooks may call (webhooks.allow_hosts)"
        ));
    }
    let literal = match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    };
    match literal {
        Some(ip) => check_address(config, ip),
        None => Ok(()),
    }?;
    Ok(url)
}

/// `hooks.example.com` matches itself; `*.example.com` matches its subdomains, not itself.
fn host_matches(allowed: &str, host: &str) -> bool {
    let allowed = allowed.trim().to_ascii_lowercase();
    match allowed.strip_prefix("*.") {
        Some(parent) => host.ends_with(&format!(".{parent}")),
        None => allowed == host.trim_start_matches('[').trim_end_matches(']'),
    }
}

/// Why a host gave no address to call.
#[derive(Debug)]
pub enum Unresolved {
    /// An address the policy refuses: asking again will not change that.
    Refused(String),
    /// The lookup failed; it may work later.
    Lookup(String),
}

/// The addresses the URL's host resolves to, each allowed by the policy; the delivery
/// connects to these and no other, so a second lookup cannot swap in a private one.
pub async fn resolve(config: &WebhooksConfig, url: &Url) -> Result<Vec<SocketAddr>, Unresolved> {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Unresolved::Lookup(format!("cannot resolve {host}: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(Unresolved::Lookup(format!("{host} resolves to no address")));
    }
    for addr in &found {
        check_address(config, addr.ip()).map_err(Unresolved::Refused)?;
    }
    Ok(found)
}

fn check_address(config: &WebhooksConfig, ip: IpAddr) -> Result<(), String> {
    match is_public(ip) || config.allow_private_addresses {
        true => Ok(()),
        false => Err(format!(
            "{ip} is a loopback, private, link-local or otherwise non-public address; \
             webhooks.allow_private_addresses is off"
        )),
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local (the
/// cloud metadata services live there), shared, reserved, documentation or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b); // 100.64.0.0/10, carrier-grade NAT
    let benchmarking = a == 198 && (b == 18 || b == 19); // 198.18.0.0/15
    let protocol = a == 192 && b == 0 && ip.octets()[2] == 0; // 192.0.0.0/24
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || a >= 240
        || shared
        || benchmarking
        || protocol)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00; // fc00::/7
    let link_local = first & 0xffc0 == 0xfe80; // fe80::/10
    let documentation = first == 0x2001 && ip.segments()[1] == 0x0db8;
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || unique_local
        || link_local
        || documentation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hosts: &[&str], private: bool) -> WebhooksConfig {
        WebhooksConfig {
            allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            secret: Some("0123456789abcdef".into()),
            allow_private_addresses: private,
            ..WebhooksConfig::default()
        }
    }

    #[test]
    fn only_http_urls_to_allowed_hosts_pass() {
        let c = config(&["hooks.example.com", "*.corp.example"], false);
        assert!(check_url(&c, "https://hooks.example.com/cb?x=1").is_ok());
        assert!(check_url(&c, "http://HOOKS.example.com:8080/").is_ok());
        assert!(check_url(&c, "https://a.b.corp.example/").is_ok());
        for bad in [
            "https://corp.example/",
            "https://evil.com/",
            "https://hooks.example.com.evil.com/",
            "ftp://hooks.example.com/",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert!(check_url(&c, bad).is_err(), "{bad}");
        }
        let off = config(&[], true);
        assert!(check_url(&off, "https://hooks.example.com/")
            .unwrap_err()
            .contains("off"));
    }

    #[test]
    fn private_literals_are_refused_even_when_allowed_by_name_unless_enabled() {
        let hosts = ["127.0.0.1", "169.254.169.254", "::1", "10.1.2.3"];
        let strict = config(&hosts, false);
        for url in [
            "http://127.0.0.1:9/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://10.1.2.3/",
        ] {
            assert!(
                check_url(&strict, url).unwrap_err().contains("non-public"),
                "{url}"
            );
        }
        let open = config(&hosts, true);
        assert!(check_url(&open, "http://127.0.0.1:9/").is_ok());
        assert!(check_url(&open, "http://[::1]/").is_ok());
    }

    #[test]
    fn public_means_routable_on_the_internet() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "93.184.216.34"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_name_is_judged_by_the_addresses_it_resolves_to() {
        let c = config(&["localhost"], false);
        let url = check_url(&c, "http://localhost:9/").unwrap();
        let refused = resolve(&c, &url).await.unwrap_err();
        assert!(
            matches!(&refused, Unresolved::Refused(why) if why.contains("non-public")),
            "{refused:?}"
        );
        let open = config(&["localhost"], true);
        assert!(resolve(&open, &url)
            .await
            .unwrap()
            .iter()
            .all(|a| a.ip().is_loopback()));
    }
}
