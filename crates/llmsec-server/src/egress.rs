//! Where the server may send HTTP: the egress policy for webhooks, alert
//! receivers, incident managers and Sentinel webhook actions.
//!
//! URLs come from API callers and detector configs, so without a policy a
//! caller could make the server reach what only it can reach: the cloud
//! metadata service, an admin port on loopback, a database on the private
//! network. By default every address that is not public unicast is
//! refused ([`classify`]): loopback, link-local (with the metadata
//! addresses), private and shared (CGNAT) ranges, IPv6 unique-local,
//! unspecified, multicast, broadcast and reserved blocks, in their IPv4 and
//! IPv4-mapped (or translated) IPv6 forms alike.
//!
//! The check runs where the connection is made, on the addresses a name
//! resolves to ([`EgressResolver`]), so a name that resolves to a public
//! address at registration and to an internal one at delivery (DNS
//! rebinding) is still refused. reqwest does not call the resolver for a URL
//! whose host is an IP literal, so those are checked separately
//! ([`EgressPolicy::check_url`]), at registration (a 400 naming `url`) and
//! again before every attempt. The delivery client follows no redirect and
//! uses no proxy, so every connection it makes goes through these checks.
//!
//! Operators who need internal targets list them under `[egress] allow`:
//! CIDR blocks, single addresses, or host names whose every address is
//! allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The `[egress]` section of the server config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Targets allowed although they are not public: CIDR blocks
    /// (`10.1.2.0/24`, `fd00::/8`), single addresses (`127.0.0.1`), or host
    /// names (`hooks.internal.example`, matched exactly, any port) whose
    /// every address is then allowed.
    pub allow: Vec<String>,
}

/// Why an egress target is refused, or the allow-list is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// An `allow` entry is not a CIDR block, an address or a host name.
    #[error("{entry:?} is not a CIDR block, an IP address or a host name")]
    BadAllow {
        /// Its index in `allow`.
        index: usize,
        /// The entry.
        entry: String,
    },
    /// The address is not public and not allowed.
    #[error("{addr} is {class}, which the egress policy refuses (list it under [egress] allow to permit it)")]
    Refused {
        /// The address.
        addr: IpAddr,
        /// What kind of address it is.
        class: &'static str,
    },
    /// Resolving the host failed.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The policy: refuse what [`classify`] names unless the allow-list permits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl EgressPolicy {
    /// The policy of a config section; each entry must be a CIDR block, an
    /// address or a host name.
    pub fn from_config(c: &EgressConfig) -> Result<EgressPolicy, EgressError> {
        let mut p = EgressPolicy::default();
        for (index, entry) in c.allow.iter().enumerate() {
            let e = entry.trim();
            if let Ok(net) = e.parse::<IpNet>() {
                p.nets.push(net.trunc());
            } else if let Ok(ip) = e.parse::<IpAddr>() {
                p.nets.push(IpNet::from(ip));
            } else if is_host_name(e) {
                p.hosts.push(normal_host(e));
            } else {
                return Err(EgressError::BadAllow { index, entry: entry.clone() });
            }
        }
        Ok(p)
    }

    /// Whether `host` (a name, not an address) is on the allow-list.
    pub fn allows_host(&self, host: &str) -> bool {
        let h = normal_host(host);
        self.hosts.contains(&h)
    }

    /// `Ok` when a connection to `ip` is allowed: a public address, or one
    /// inside an allowed block (an IPv4-mapped IPv6 address counts as its
    /// IPv4 address).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), EgressError> {
        let Some(class) = classify(ip) else { return Ok(()) };
        let canonical = ip.to_canonical();
        if self.nets.iter().any(|n| n.contains(&ip) || n.contains(&canonical)) {
            return Ok(());
        }
        Err(EgressError::Refused { addr: ip, class })
    }

    /// Checks what can be known of a URL before connecting: an IP-literal
    /// host is checked now; a host name passes (its addresses are checked
    /// when it is resolved). A URL that does not parse passes too: the
    /// caller's own validation reports it.
    pub fn check_url(&self, url: &str) -> Result<(), EgressError> {
        let Ok(u) = url::Url::parse(url) else { return Ok(()) };
        match u.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) | None => Ok(()),
        }
    }

    /// The addresses of `host` a connection may use: all of them when the
    /// name is allowed, else those [`check_ip`](Self::check_ip) allows.
    /// None left is refused, naming the first address.
    pub fn filter(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, EgressError> {
        if self.allows_host(host) {
            return Ok(addrs);
        }
        let mut first_refusal = None;
        let mut kept = Vec::with_capacity(addrs.len());
        for a in addrs {
            match self.check_ip(a.ip()) {
                Ok(()) => kept.push(a),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        match first_refusal {
            Some(e) if kept.is_empty() => Err(e),
            _ => Ok(kept),
        }
    }
}

fn normal_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, none
/// empty, not starting or ending with `-`.
fn is_host_name(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // All-numeric names would read as addresses; those must be written as addresses.
        && !s.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// What kind of non-public address `ip` is, or `None` for a public
/// unicast address. IPv4-mapped (`::ffff:a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`) addresses are
/// classified by the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const TABLE: &[([u8; 4], u32, &str)] = &[
        ([169, 254, 169, 254], 32, "the cloud metadata address"),
        ([0, 0, 0, 0], 8, "an unspecified (this-network) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([192, 0, 0, 0], 24, "a reserved (IETF protocol) address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([198, 18, 0, 0], 15, "a reserved (benchmarking) address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    TABLE.iter().find(|(net, prefix, _)| in_v4(ip, *net, *prefix)).map(|(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if ip.is_unspecified() {
        return Some("the unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        return Some("the cloud metadata address");
    }
    // Addresses that carry an IPv4 address a translator or relay would reach.
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(low32);
    }
    if in_v6(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return classify_v4(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    const TABLE: &[(Ipv6Addr, u32, &str)] = &[
        // IPv4-compatible (deprecated) addresses; :: and ::1 are caught above.
        (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96, "an IPv4-compatible address"),
        (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "a local-use NAT64 address"),
        (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "a discard-only address"),
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "a documentation address"),
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "a unique-local (private) address"),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "a link-local address"),
        (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "a site-local address"),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "a multicast address"),
    ];
    TABLE.iter().find(|(net, prefix, _)| in_v6(ip, *net, *prefix)).map(|(_, _, class)| *class)
}

/// A resolver for the delivery client that resolves with the system
/// resolver and hands reqwest only the addresses the policy allows, so the
/// check holds for the address actually connected to.
#[derive(Debug, Clone)]
pub struct EgressResolver {
    policy: Arc<EgressPolicy>,
}

impl EgressResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> EgressResolver {
        EgressResolver { policy }
    }
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| EgressError::Resolve { host: host.clone(), source })?
                .collect();
            let kept = policy.filter(&host, addrs)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an error (or one of its sources) is an egress refusal.
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if matches!(x.downcast_ref::<EgressError>(), Some(EgressError::Refused { .. })) {
            return true;
        }
        cur = x.source();
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        // (address, expected class; None = public). Each row: a target an SSRF
        // would aim at, or a public look-alike next to it.
        let table: &[(&str, Option<&str>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("172.15.255.255", None),  // just below 172.16/12
            ("172.32.0.0", None),      // just above it
            ("100.63.255.255", None),  // just below 100.64/10
            ("100.128.0.0", None),     // just above it
            ("169.253.255.255", None), // just below link-local
            ("127.0.0.1", Some("a loopback address")),
            ("127.255.255.254", Some("a loopback address")),
            ("10.0.0.1", Some("a private address")),
            ("172.16.0.1", Some("a private address")),
            ("172.31.255.255", Some("a private address")),
            ("192.168.1.1", Some("a private address")),
            ("100.64.0.1", Some("a shared (CGNAT) address")),
            ("100.100.100.200", Some("a shared (CGNAT) address")), // Alibaba Cloud metadata
            ("169.254.169.254", Some("the cloud metadata address")),
            ("169.254.170.2", Some("a link-local address")), // ECS task metadata
            ("0.0.0.0", Some("an unspecified (this-network) address")),
            ("0.1.2.3", Some("an unspecified (this-network) address")),
            ("224.0.0.1", Some("a multicast address")),
            ("239.255.255.250", Some("a multicast address")),
            ("255.255.255.255", Some("the broadcast address")),
            ("240.0.0.1", Some("a reserved address")),
            ("198.18.0.1", Some("a reserved (benchmarking) address")),
            ("192.0.0.1", Some("a reserved (IETF protocol) address")),
            ("2001:4860:4860::8888", None),
            ("2606:4700::1111", None),
            ("::", Some("the unspecified address")),
            ("::1", Some("a loopback address")),
            ("fe80::1", Some("a link-local address")),
            ("febf:ffff::1", Some("a link-local address")),
            ("fc00::1", Some("a unique-local (private) address")),
            ("fd12:3456::1", Some("a unique-local (private) address")),
            ("fd00:ec2::254", Some("the cloud metadata address")),
            ("ff02::1", Some("a multicast address")),
            ("fec0::1", Some("a site-local address")),
            // IPv4-mapped forms: classified as the IPv4 address.
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("::ffff:169.254.169.254", Some("the cloud metadata address")),
            ("::ffff:10.1.2.3", Some("a private address")),
            ("::ffff:0.0.0.0", Some("an unspecified (this-network) address")),
            ("::ffff:8.8.8.8", None),
            // IPv4-compatible (deprecated) and translated forms.
            ("::127.0.0.1", Some("an IPv4-compatible address")),
            ("64:ff9b::a9fe:a9fe", Some("the cloud metadata address")),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::1", Some("a local-use NAT64 address")),
            ("2002:a9fe:a9fe::1", Some("the cloud metadata address")),
            ("2002:0808:0808::1", None),
        ];
        for (addr, want) in table {
            assert_eq!(classify(ip(addr)), *want, "{addr}");
        }
    }

    #[test]
    fn the_default_policy_refuses_internal_targets_and_the_allow_list_permits_them() {
        let deny = EgressPolicy::default();
        assert!(deny.check_ip(ip("8.8.8.8")).is_ok());
        let e = deny.check_ip(ip("169.254.169.254")).unwrap_err().to_string();
        assert!(e.contains("169.254.169.254") && e.contains("metadata") && e.contains("[egress] allow"), "{e}");
        let allow = EgressPolicy::from_config(&EgressConfig {
            allow: vec!["127.0.0.1".into(), "10.1.2.0/24".into(), "fd00::/8".into(), "Hooks.Internal.".into()],
        })
        .unwrap();
        for ok in ["127.0.0.1", "::ffff:127.0.0.1", "10.1.2.200", "fd00::5", "8.8.8.8"] {
            assert!(allow.check_ip(ip(ok)).is_ok(), "{ok}");
        }
        for refused in ["127.0.0.2", "10.1.3.1", "169.254.169.254", "fc00::1", "::1"] {
            assert!(allow.check_ip(ip(refused)).is_err(), "{refused}");
        }
        assert!(allow.allows_host("hooks.internal"));
        assert!(allow.allows_host("HOOKS.internal."));
        assert!(!allow.allows_host("other.internal"));
        // A block written with host bits set covers its whole block.
        let p = EgressPolicy::from_config(&EgressConfig { allow: vec!["10.1.2.3/24".into()] }).unwrap();
        assert!(p.check_ip(ip("10.1.2.77")).is_ok());
    }

    #[test]
    fn bad_allow_entries_are_named() {
        for bad in ["10.0.0.0/33", "http://x/", "a b", "-x.example", "1.2.3", ""] {
            let e =
                EgressPolicy::from_config(&EgressConfig { allow: vec!["ok.example".into(), bad.into()] }).unwrap_err();
            assert!(matches!(e, EgressError::BadAllow { index: 1, .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn urls_with_literal_addresses_are_checked_in_every_spelling() {
        let p = EgressPolicy::default();
        for refused in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8080/x",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.0.0.1/", // hex octet
            "http://0177.0.0.1/", // octal octet
            "http://127.1/",      // short form
            "http://0/",          // 0.0.0.0
            "http://[::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "https://user:pw@10.0.0.1/",
        ] {
            let e = p.check_url(refused).unwrap_err();
            assert!(matches!(e, EgressError::Refused { .. }), "{refused}: {e}");
        }
        for passes in ["https://hooks.example.com/x", "http://8.8.8.8/", "http://localhost/", "not a url"] {
            assert!(p.check_url(passes).is_ok(), "{passes}");
        }
    }

    #[test]
    fn resolved_addresses_are_filtered() {
        let p = EgressPolicy::default();
        let sa = |s: &str| SocketAddr::new(ip(s), 0);
        let mixed = vec![sa("10.0.0.1"), sa("8.8.8.8")];
        assert_eq!(p.filter("h.example", mixed).unwrap(), vec![sa("8.8.8.8")]);
        let e = p.filter("h.example", vec![sa("127.0.0.1"), sa("::1")]).unwrap_err();
        assert!(matches!(e, EgressError::Refused { addr, .. } if addr == ip("127.0.0.1")));
        let named = EgressPolicy::from_config(&EgressConfig { allow: vec!["h.example".into()] }).unwrap();
        assert_eq!(named.filter("h.example", vec![sa("127.0.0.1")]).unwrap(), vec![sa("127.0.0.1")]);
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        use reqwest::dns::Resolve;
        let name = |s: &str| s.parse::<reqwest::dns::Name>().unwrap();
        let refused = EgressResolver::new(Arc::new(EgressPolicy::default())).resolve(name("localhost")).await;
        let e = refused.err().unwrap();
        assert!(is_refusal(e.as_ref()), "{e}");
        let allowed =
            EgressPolicy::from_config(&EgressConfig { allow: vec!["127.0.0.0/8".into(), "::1".into()] }).unwrap();
        let addrs: Vec<SocketAddr> =
            EgressResolver::new(Arc::new(allowed)).resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
