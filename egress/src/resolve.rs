//! The gateway's side of name resolution: an `A` query for a name the policy has allowed, and
//! the addresses in the answer. The gateway resolves on the host, only after the policy allowed
//! the destination; the guest never resolves anything.

use std::net::Ipv4Addr;

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name cannot be put in a query.
    #[error("the name {0:?} cannot be looked up (labels of 1 to 63 bytes, 253 bytes in all)")]
    BadName(String),
    /// The answer ends early or points outside itself.
    #[error("the DNS answer is malformed ({0})")]
    Malformed(&'static str),
    /// The answer is for another query.
    #[error("the DNS answer has id {got}, the query had {want}")]
    WrongId {
        /// Id in the answer.
        got: u16,
        /// Id of the query.
        want: u16,
    },
    /// The server answered with an error code.
    #[error("the DNS server answered with error code {0} (3: no such name)")]
    Rcode(u8),
}

/// A recursive `A` query for `name` (a normalised name: letters, digits, hyphens, dots).
pub fn a_query(id: u16, name: &str) -> Result<Vec<u8>, ResolveError> {
    let bad = || ResolveError::BadName(name.chars().take(100).collect());
    if name.is_empty() || name.len() > crate::MAX_NAME {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))
            .ok_or_else(bad)?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.extend_from_slice(&[0, 0, 1, 0, 1]);
    Ok(out)
}

/// The IPv4 addresses an answer to query `id` holds (CNAMEs are followed within the answer).
pub fn a_answers(packet: &[u8], id: u16) -> Result<Vec<Ipv4Addr>, ResolveError> {
    let short = ResolveError::Malformed("it ends early");
    let header = packet.get(..12).ok_or(short.clone())?;
    let got = u16::from_be_bytes([header[0], header[1]]);
    if got != id {
        return Err(ResolveError::WrongId { got, want: id });
    }
    if header[2] & 0x80 == 0 {
        return Err(ResolveError::Malformed("it is a query, not an answer"));
    }
    let rcode = header[3] & 0x0f;
    if rcode != 0 {
        return Err(ResolveError::Rcode(rcode));
    }
    let qd = u16::from_be_bytes([header[4], header[5]]);
    let an = u16::from_be_bytes([header[6], header[7]]);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(packet, at)?;
        at = at
            .checked_add(4)
            .filter(|a| *a <= packet.len())
            .ok_or(short.clone())?;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(packet, at)?;
        let fixed = packet.get(at..at + 10).ok_or(short.clone())?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = packet.get(at + 10..at + 10 + len).ok_or(short.clone())?;
        if rtype == 1 && class == 1 && len == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Ok(out)
}

/// The offset after the name at `at` (a compression pointer ends it).
fn skip_name(packet: &[u8], mut at: usize) -> Result<usize, ResolveError> {
    for _ in 0..128 {
        let len = *packet
            .get(at)
            .ok_or(ResolveError::Malformed("a name runs past the end"))?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => {
                return packet
                    .get(at + 1)
                    .map(|_| at + 2)
                    .ok_or(ResolveError::Malformed("a name pointer runs past the end"))
            }
            l if l <= 63 => at += 1 + usize::from(l),
            _ => return Err(ResolveError::Malformed("a label has an unknown type")),
        }
    }
    Err(ResolveError::Malformed("a name has too many labels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: u16, query: &[u8], addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut a = query.to_vec();
        a[0..2].copy_from_slice(&id.to_be_bytes());
        a[2] = 0x81;
        a[3] = 0x80;
        a[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
        for ip in addrs {
            a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            a.extend_from_slice(ip);
        }
        a
    }

    #[test]
    fn a_query_round_trips_through_the_stub_parser() {
        let q = a_query(7, "docs.example.org").expect("a name");
        let parsed = crate::dns::parse_query(&q).expect("a query");
        assert_eq!(
            (parsed.id, parsed.name.as_str(), parsed.qtype),
            (7, "docs.example.org", 1)
        );
    }

    #[test]
    fn the_addresses_of_an_answer_are_read() {
        let q = a_query(9, "a.test").expect("a name");
        let a = answer(9, &q, &[[127, 0, 0, 1], [10, 0, 0, 2]]);
        assert_eq!(
            a_answers(&a, 9).expect("an answer"),
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
        );
    }

    #[test]
    fn an_answer_to_another_query_or_with_an_error_is_refused() {
        let q = a_query(9, "a.test").expect("a name");
        assert_eq!(
            a_answers(&answer(8, &q, &[]), 9),
            Err(ResolveError::WrongId { got: 8, want: 9 })
        );
        let mut nx = answer(9, &q, &[]);
        nx[3] = 0x83;
        assert_eq!(a_answers(&nx, 9), Err(ResolveError::Rcode(3)));
    }

    #[test]
    fn truncated_answers_never_panic() {
        let q = a_query(9, "a.test").expect("a name");
        let a = answer(9, &q, &[[1, 2, 3, 4]]);
        for n in 0..a.len() {
            let _ = a_answers(&a[..n], 9);
        }
        assert!(a_answers(&a[..a.len() - 1], 9).is_err());
    }

    #[test]
    fn names_with_empty_or_long_labels_cannot_be_looked_up() {
        assert!(a_query(1, "a..b").is_err());
        assert!(a_query(1, &"a".repeat(64)).is_err());
        assert!(a_query(1, "").is_err());
    }
}
