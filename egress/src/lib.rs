//! The egress gateway's pure core: what a sandbox asks to connect to, checked on the host before
//! any name is resolved, and what a resolved address is.
//!
//! The guest side of egress is untrusted convenience; the host decides. A destination arrives as
//! the host text of an HTTP `CONNECT`, an absolute URI or a SOCKS5 request: [`parse_host`] turns it
//! into a normalised [`Host`] (lower case, no trailing dot, ASCII only — internationalised names
//! must arrive in their IDNA `xn--` form, as browsers and curl send them — labels of letters,
//! digits and hyphens, lengths within DNS limits) or refuses it with a sentence saying what was
//! wrong. Numeric spellings that resolvers read as addresses (`127.1`, `0x7f.0.0.1`, `2130706433`)
//! are refused as names. [`classify`] tells loopback, private, link-local, cloud-metadata and other
//! special addresses from public ones, including IPv4 addresses written as IPv6, so the gateway can
//! refuse them unless a rule names them.
//!
//! Nothing here does I/O: the gateway that uses it (policy first, then resolution, then dialling
//! the pinned address) is built on top.
//!
//! ```
//! use airlock_egress::{classify, parse_host, AddressClass, Host};
//! assert_eq!(parse_host("Docs.Example.ORG.")?, Host::Name("docs.example.org".into()));
//! assert!(parse_host("127.1").is_err());
//! assert_eq!(classify("169.254.169.254".parse().unwrap()), AddressClass::Metadata);
//! assert_eq!(classify("::ffff:10.0.0.1".parse().unwrap()), AddressClass::Private);
//! # Ok::<(), airlock_egress::HostError>(())
//! ```

#![deny(missing_docs)]

pub mod dns;
pub mod request;
pub mod resolve;
pub mod tls;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name, in bytes, without the trailing dot (RFC 1035).
pub const MAX_NAME: usize = 253;
/// Longest label, in bytes.
pub const MAX_LABEL: usize = 63;

/// A destination host, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: lower case, no trailing dot, ASCII letters, digits, hyphens and dots.
    Name(String),
    /// An address literal (`203.0.113.7`, `[2001:db8::1]`).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Why a destination host was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing was given.
    #[error("the destination host is empty")]
    Empty,
    /// Over [`MAX_NAME`] bytes.
    #[error("the destination name is {len} bytes long, over the {MAX_NAME}-byte limit")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A label over [`MAX_LABEL`] bytes.
    #[error("the label {label:?} is {len} bytes long, over the {MAX_LABEL}-byte limit")]
    LabelTooLong {
        /// The start of the label.
        label: String,
        /// Its length.
        len: usize,
    },
    /// Two dots in a row, or a leading dot.
    #[error("the destination name {name:?} has an empty label")]
    EmptyLabel {
        /// The name.
        name: String,
    },
    /// Not ASCII: it must come in IDNA form.
    #[error("the destination name {name:?} is not ASCII; internationalised names must arrive in their IDNA (xn--) form")]
    NotAscii {
        /// The name as given (cut to 64 characters).
        name: String,
    },
    /// A character other than a letter, digit or hyphen, or a hyphen at a label's edge.
    #[error("the label {label:?} is not letters, digits and inner hyphens")]
    NotLdh {
        /// The label.
        label: String,
    },
    /// A numeric spelling a resolver would read as an address.
    #[error("{name:?} is a numeric address in disguise; write an address as a plain dotted quad or [IPv6]")]
    NumericName {
        /// The name.
        name: String,
    },
    /// A bracketed IPv6 literal that does not parse.
    #[error("{text:?} is not an IPv6 address")]
    BadIpv6 {
        /// The text in brackets.
        text: String,
    },
}

/// Normalises and checks the host part of a destination. IPv6 literals come in brackets.
pub fn parse_host(raw: &str) -> Result<Host, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .map(|a| Host::Ip(IpAddr::V6(a)))
            .map_err(|_| HostError::BadIpv6 { text: cut(inner, 64) });
    }
    if !raw.is_ascii() {
        return Err(HostError::NotAscii { name: cut(raw, 64) });
    }
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(HostError::TooLong { len: name.len() });
    }
    if let Ok(a) = name.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(a)));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel { name: cut(&name, 64) });
        }
        if label.len() > MAX_LABEL {
            return Err(HostError::LabelTooLong {
                label: cut(label, 16),
                len: label.len(),
            });
        }
        let ldh = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ldh || label.starts_with('-') || label.ends_with('-') {
            return Err(HostError::NotLdh {
                label: cut(label, 64),
            });
        }
    }
    // A last label that is all digits (or hex) makes resolvers try the name as an address:
    // `127.1`, `2130706433`, `0x7f.0.0.1`.
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = |l: &str| {
        l.bytes().all(|b| b.is_ascii_digit())
            || l.strip_prefix("0x")
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if numeric(last) {
        return Err(HostError::NumericName { name });
    }
    Ok(Host::Name(name))
}

/// What kind of address a destination resolved to (or was given as).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// This machine (`127.0.0.0/8`, `::1`).
    Loopback,
    /// A private network (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`).
    Private,
    /// Carrier-grade NAT space (`100.64.0.0/10`).
    SharedNat,
    /// Link-local (`169.254/16` other than metadata, `fe80::/10`).
    LinkLocal,
    /// A cloud instance-metadata service (`169.254.169.254`, `169.254.170.2`, `fd00:ec2::254`).
    Metadata,
    /// "This network" or unspecified (`0.0.0.0/8`, `::`).
    Unspecified,
    /// Multicast or broadcast.
    Multicast,
    /// Reserved, documentation or benchmarking space (`240/4`, `192.0.2/24`, `198.18/15`,
    /// `2001:db8::/32`, …).
    Reserved,
}

impl AddressClass {
    /// The name policies see (`context.address_class`): `public`, `loopback`, `private`,
    /// `shared_nat`, `link_local`, `metadata`, `unspecified`, `multicast`, `reserved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedNat => "shared_nat",
            AddressClass::LinkLocal => "link_local",
            AddressClass::Metadata => "metadata",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Reserved => "reserved",
        }
    }

    /// Whether a connection there is refused unless a rule names the address.
    pub fn is_special(self) -> bool {
        match self {
            AddressClass::Public => false,
            AddressClass::Loopback
            | AddressClass::Private
            | AddressClass::SharedNat
            | AddressClass::LinkLocal
            | AddressClass::Metadata
            | AddressClass::Unspecified
            | AddressClass::Multicast
            | AddressClass::Reserved => true,
        }
    }
}

/// Classifies an address; IPv4 written as IPv6 (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`,
/// 6to4 `2002::/16`) is classified as the IPv4 address it carries.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => match embedded_v4(a) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(a),
        },
    }
}

fn classify_v4(a: Ipv4Addr) -> AddressClass {
    let o = a.octets();
    match o {
        [169, 254, 169, 254] | [169, 254, 170, 2] => AddressClass::Metadata,
        [127, ..] => AddressClass::Loopback,
        [10, ..] | [192, 168, ..] => AddressClass::Private,
        [172, b, ..] if (16..32).contains(&b) => AddressClass::Private,
        [100, b, ..] if (64..128).contains(&b) => AddressClass::SharedNat,
        [169, 254, ..] => AddressClass::LinkLocal,
        [0, ..] => AddressClass::Unspecified,
        [255, 255, 255, 255] => AddressClass::Multicast,
        [a0, ..] if (224..240).contains(&a0) => AddressClass::Multicast,
        [a0, ..] if a0 >= 240 => AddressClass::Reserved,
        [192, 0, 0, _] | [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => AddressClass::Reserved,
        [198, b, ..] if b == 18 || b == 19 => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(a: Ipv6Addr) -> AddressClass {
    let s = a.segments();
    if a.is_loopback() {
        AddressClass::Loopback
    } else if a.is_unspecified() {
        AddressClass::Unspecified
    } else if a == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Metadata
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if s[0] == 0x2001 && s[1] == 0x0db8 || s[0] & 0xe000 != 0x2000 {
        // Documentation space, and everything outside global unicast 2000::/3.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address an IPv6 address carries: mapped, NAT64 well-known prefix, or 6to4.
fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = a.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = a.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        _ => None,
    }
}

/// The first `max` characters of `s` (for errors that quote hostile input).
pub(crate) fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(s.into())
    }

    #[test]
    fn names_are_lower_cased_and_lose_the_trailing_dot() {
        assert_eq!(parse_host("Docs.Example.ORG."), Ok(name("docs.example.org")));
        assert_eq!(
            parse_host("xn--bcher-kva.example"),
            Ok(name("xn--bcher-kva.example"))
        );
        assert_eq!(parse_host("a-b.c9"), Ok(name("a-b.c9")));
    }

    #[test]
    fn address_literals_are_addresses() {
        assert_eq!(
            parse_host("203.0.113.7"),
            Ok(Host::Ip("203.0.113.7".parse().unwrap()))
        );
        assert_eq!(
            parse_host("[2001:db8::1]"),
            Ok(Host::Ip("2001:db8::1".parse().unwrap()))
        );
        assert!(matches!(parse_host("[not-v6]"), Err(HostError::BadIpv6 { .. })));
        assert_eq!(parse_host("[::1]").map(|h| h.to_string()).as_deref(), Ok("[::1]"));
    }

    #[test]
    fn numeric_spellings_of_addresses_are_refused_as_names() {
        for n in ["127.1", "2130706433", "0x7f.0.0.1", "0x7f000001", "10.1"] {
            assert!(matches!(parse_host(n), Err(HostError::NumericName { .. })), "{n}");
        }
        assert_eq!(parse_host("1password.com"), Ok(name("1password.com")));
    }

    #[test]
    fn malformed_names_are_refused_with_what_was_wrong() {
        assert_eq!(parse_host(""), Err(HostError::Empty));
        assert_eq!(parse_host("."), Err(HostError::Empty));
        assert!(matches!(parse_host("a..b"), Err(HostError::EmptyLabel { .. })));
        assert!(matches!(parse_host(".a"), Err(HostError::EmptyLabel { .. })));
        assert!(matches!(
            parse_host("bücher.example"),
            Err(HostError::NotAscii { .. })
        ));
        assert!(matches!(parse_host("a_b.example"), Err(HostError::NotLdh { .. })));
        assert!(matches!(parse_host("-a.example"), Err(HostError::NotLdh { .. })));
        assert!(matches!(parse_host("a-.example"), Err(HostError::NotLdh { .. })));
        assert!(matches!(parse_host("a b.example"), Err(HostError::NotLdh { .. })));
        assert!(matches!(
            parse_host("evil.example:80"),
            Err(HostError::NotLdh { .. })
        ));
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(matches!(
            parse_host(&long_label),
            Err(HostError::LabelTooLong { len: 64, .. })
        ));
        let long_name = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(parse_host(&long_name), Err(HostError::TooLong { .. })));
        let e = parse_host("a_b.example").unwrap_err().to_string();
        assert!(e.contains("a_b"), "{e}");
    }

    #[test]
    fn special_ipv4_addresses_are_told_apart() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("169.254.169.254"), AddressClass::Metadata);
        assert_eq!(c("169.254.170.2"), AddressClass::Metadata);
        assert_eq!(c("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(c("127.255.0.9"), AddressClass::Loopback);
        for p in ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1"] {
            assert_eq!(c(p), AddressClass::Private, "{p}");
        }
        assert_eq!(c("172.32.0.1"), AddressClass::Public);
        assert_eq!(c("100.64.0.1"), AddressClass::SharedNat);
        assert_eq!(c("169.254.1.1"), AddressClass::LinkLocal);
        assert_eq!(c("0.0.0.0"), AddressClass::Unspecified);
        assert_eq!(c("224.0.0.1"), AddressClass::Multicast);
        assert_eq!(c("255.255.255.255"), AddressClass::Multicast);
        assert_eq!(c("240.0.0.1"), AddressClass::Reserved);
        assert_eq!(c("198.18.0.1"), AddressClass::Reserved);
        assert_eq!(c("203.0.113.7"), AddressClass::Reserved);
        assert_eq!(c("93.184.216.34"), AddressClass::Public);
    }

    #[test]
    fn ipv4_written_as_ipv6_is_classified_as_the_ipv4_it_carries() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(c("::ffff:169.254.169.254"), AddressClass::Metadata);
        assert_eq!(c("64:ff9b::a00:1"), AddressClass::Private);
        assert_eq!(c("2002:7f00:1::"), AddressClass::Loopback);
    }

    #[test]
    fn special_ipv6_addresses_are_told_apart() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("::1"), AddressClass::Loopback);
        assert_eq!(c("::"), AddressClass::Unspecified);
        assert_eq!(c("fd00:ec2::254"), AddressClass::Metadata);
        assert_eq!(c("fd12::1"), AddressClass::Private);
        assert_eq!(c("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(c("ff02::1"), AddressClass::Multicast);
        assert_eq!(c("2001:db8::1"), AddressClass::Reserved);
        assert_eq!(c("2606:4700::1111"), AddressClass::Public);
        assert!(!AddressClass::Public.is_special());
        assert!(AddressClass::Metadata.is_special());
    }
}
