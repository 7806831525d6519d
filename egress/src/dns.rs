//! DNS that carries nothing out of a sandbox: the guest's stub resolver answers every query
//! REFUSED and reports the name to the host, and the host sums those reports up.
//!
//! Programs in the guest reach the network only through the egress proxy, which resolves names on
//! the host after policy; a DNS query answered from outside would be a channel around it (a name
//! like `<secret-in-hex>.exfil.test` leaks to whoever serves that zone). So the stub never
//! forwards: [`parse_query`] reads the one question of a standard query and [`refused`] builds
//! the REFUSED response. They refuse packets over [`MAX_PACKET`] bytes, truncated packets,
//! responses, opcodes other than a standard query, a question count other than one, compression
//! pointers in the question (a query has nothing to point back to), labels over [`MAX_LABEL`]
//! bytes and names over [`MAX_WIRE_NAME`] bytes on the wire.
//!
//! On the host, [`Refusals`] aggregates the reported names per sandbox by their last two labels,
//! with a bounded number of groups and examples, so a flood of distinct names (the shape of
//! exfiltration) is one line with a count, not a thousand.

use std::collections::BTreeMap;

use crate::MAX_LABEL;

/// Largest DNS packet read (the EDNS payload size resolvers commonly advertise).
pub const MAX_PACKET: usize = 4096;
/// Longest name on the wire: length bytes, labels and the terminating zero (RFC 1035).
pub const MAX_WIRE_NAME: usize = 255;
/// Most example names kept per group.
pub const MAX_EXAMPLES: usize = 3;
/// Longest example name kept, in bytes.
pub const MAX_EXAMPLE_LEN: usize = 100;

/// Response code REFUSED (RFC 1035).
const REFUSED: u8 = 5;
/// Length of the fixed header.
const HEADER: usize = 12;

/// The question of a standard DNS query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The query id, echoed in the response.
    pub id: u16,
    /// The name asked about: lower case, labels joined by dots, no trailing dot (`.` for the
    /// root). Bytes that are not printable ASCII, and dots and backslashes inside a label, are
    /// written `\DDD` (decimal, as in RFC 1035 zone files).
    pub name: String,
    /// The record type asked for (1 A, 28 AAAA, 16 TXT, …).
    pub qtype: u16,
}

/// Why a packet is not a query the stub answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Over [`MAX_PACKET`] bytes.
    #[error("the DNS packet is {len} bytes long, over the {MAX_PACKET}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The packet ends early.
    #[error("the DNS packet ends inside its {0}")]
    Truncated(&'static str),
    /// The QR bit is set.
    #[error("the DNS packet is a response, not a query")]
    Response,
    /// An opcode other than QUERY (0).
    #[error("DNS opcode {0} is not a standard query (0)")]
    Opcode(u8),
    /// QDCOUNT is not one.
    #[error("the DNS query has {0} questions; a standard query has exactly one")]
    QuestionCount(u16),
    /// A compression pointer in the question name.
    #[error("the DNS question name holds a compression pointer, which a query has no use for")]
    CompressionPointer,
    /// A label over [`MAX_LABEL`] bytes (or a label type other than a plain length).
    #[error("a label of the DNS question name is {len} bytes long, over the {MAX_LABEL}-byte limit")]
    LabelTooLong {
        /// The length byte.
        len: u8,
    },
    /// A name over [`MAX_WIRE_NAME`] bytes on the wire.
    #[error("the DNS question name is over the {MAX_WIRE_NAME}-byte limit")]
    NameTooLong,
}

/// Parses a standard query (QR 0, opcode 0, one question). Answer, authority and additional
/// sections (an EDNS OPT record, say) are ignored.
pub fn parse_query(packet: &[u8]) -> Result<Query, DnsError> {
    question(packet).map(|(query, _)| query)
}

/// The REFUSED response to a query: same id, QR 1, same opcode and RD bit, RA 0, RCODE 5, the
/// question echoed byte for byte, no answer, authority or additional records. `None` when
/// `packet` is not a query [`parse_query`] accepts (the stub then drops it).
pub fn refused(packet: &[u8]) -> Option<Vec<u8>> {
    let (_, end) = question(packet).ok()?;
    let &[id_hi, id_lo, flags_hi, ..] = packet.first_chunk::<HEADER>()?;
    // QR, then the opcode (bits 3..7) and RD (bit 0) of the query; AA, TC and all of the low
    // byte but RCODE (RA, Z, AD, CD) zero.
    let flags = [0x80 | (flags_hi & 0x78) | (flags_hi & 0x01), REFUSED];
    let mut response = Vec::with_capacity(end);
    response.extend_from_slice(&[id_hi, id_lo]);
    response.extend_from_slice(&flags);
    response.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    response.extend_from_slice(packet.get(HEADER..end)?);
    Some(response)
}

/// The query and where its question ends.
fn question(packet: &[u8]) -> Result<(Query, usize), DnsError> {
    if packet.len() > MAX_PACKET {
        return Err(DnsError::TooLarge { len: packet.len() });
    }
    let &[id_hi, id_lo, flags_hi, _, qd_hi, qd_lo, ..] = packet
        .first_chunk::<HEADER>()
        .ok_or(DnsError::Truncated("header"))?;
    if flags_hi & 0x80 != 0 {
        return Err(DnsError::Response);
    }
    let opcode = (flags_hi >> 3) & 0x0f;
    if opcode != 0 {
        return Err(DnsError::Opcode(opcode));
    }
    let questions = u16::from_be_bytes([qd_hi, qd_lo]);
    if questions != 1 {
        return Err(DnsError::QuestionCount(questions));
    }
    let mut name = String::new();
    let mut at = HEADER;
    // Wire bytes so far, counting the terminating zero still to come.
    let mut wire = 1;
    loop {
        let &len = packet.get(at).ok_or(DnsError::Truncated("question name"))?;
        at += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 == 0xc0 {
            return Err(DnsError::CompressionPointer);
        }
        if usize::from(len) > MAX_LABEL {
            return Err(DnsError::LabelTooLong { len });
        }
        wire += 1 + usize::from(len);
        if wire > MAX_WIRE_NAME {
            return Err(DnsError::NameTooLong);
        }
        let label = packet
            .get(at..at + usize::from(len))
            .ok_or(DnsError::Truncated("question name"))?;
        at += usize::from(len);
        if !name.is_empty() {
            name.push('.');
        }
        push_label(&mut name, label);
    }
    if name.is_empty() {
        name.push('.');
    }
    let &[type_hi, type_lo, _, _] = packet
        .get(at..)
        .and_then(|rest| rest.first_chunk::<4>())
        .ok_or(DnsError::Truncated("question type and class"))?;
    let query = Query {
        id: u16::from_be_bytes([id_hi, id_lo]),
        name,
        qtype: u16::from_be_bytes([type_hi, type_lo]),
    };
    Ok((query, at + 4))
}

/// Appends a label in presentation form, lower case.
fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        let b = b.to_ascii_lowercase();
        if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push('\\');
            for digit in [b / 100, b / 10 % 10, b % 10] {
                out.push(char::from(b'0' + digit));
            }
        }
    }
}

/// Refused lookups of one group (a name's last two labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedGroup {
    /// The last two labels of the names (`exfil.test`), the name itself if it has one label,
    /// `.` for the root.
    pub group: String,
    /// How many lookups.
    pub count: u64,
    /// Up to [`MAX_EXAMPLES`] distinct names looked up, in the order first seen, each cut to
    /// [`MAX_EXAMPLE_LEN`] bytes.
    pub examples: Vec<String>,
}

/// What [`Refusals::drain`] hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    /// The groups, most lookups first, then by name.
    pub groups: Vec<RefusedGroup>,
    /// Lookups whose group did not fit because the group cap was reached.
    pub overflow: u64,
}

/// Refused lookups reported by one sandbox's stub, summed up by group, bounded: at most
/// `max_groups` groups, each with a count and a few examples; lookups of further groups only
/// add to an overflow count. Names are untrusted (the guest reports them), so everything kept is
/// cut to length.
#[derive(Debug, Clone)]
pub struct Refusals {
    max_groups: usize,
    groups: BTreeMap<String, RefusedGroup>,
    overflow: u64,
}

impl Refusals {
    /// An empty aggregator keeping at most `max_groups` groups.
    pub fn new(max_groups: usize) -> Self {
        Refusals {
            max_groups,
            groups: BTreeMap::new(),
            overflow: 0,
        }
    }

    /// Records `count` refused lookups of `name` (as [`Query::name`] writes it; ASCII case is
    /// ignored, a trailing dot too). A count of zero records nothing.
    pub fn record(&mut self, name: &str, count: u32) {
        if count == 0 {
            return;
        }
        let name = match name.strip_suffix('.') {
            Some("") | None => name,
            Some(trimmed) => trimmed,
        };
        let group = cut_bytes(group_of(name), MAX_WIRE_NAME).to_ascii_lowercase();
        let example = cut_bytes(name, MAX_EXAMPLE_LEN).to_ascii_lowercase();
        if let Some(g) = self.groups.get_mut(&group) {
            g.count = g.count.saturating_add(u64::from(count));
            if g.examples.len() < MAX_EXAMPLES && !g.examples.contains(&example) {
                g.examples.push(example);
            }
        } else if self.groups.len() < self.max_groups {
            let g = RefusedGroup {
                group: group.clone(),
                count: u64::from(count),
                examples: vec![example],
            };
            self.groups.insert(group, g);
        } else {
            self.overflow = self.overflow.saturating_add(u64::from(count));
        }
    }

    /// Hands over what was recorded since the last drain and starts afresh.
    pub fn drain(&mut self) -> Drained {
        let mut groups: Vec<RefusedGroup> = std::mem::take(&mut self.groups).into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.group.cmp(&b.group)));
        Drained {
            groups,
            overflow: std::mem::take(&mut self.overflow),
        }
    }

    /// Whether nothing was recorded since the last drain.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.overflow == 0
    }
}

/// The last two labels of a name without its trailing dot; `.` for the root (or nothing).
fn group_of(name: &str) -> &str {
    if name.is_empty() || name == "." {
        return ".";
    }
    match name.rmatch_indices('.').nth(1) {
        Some((dot, _)) => name.get(dot + 1..).unwrap_or(name),
        None => name,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An A query for `Docs.Example.ORG` from `busybox nslookup` (BusyBox 1.35.0), captured by a
    /// UDP listener on 127.0.0.1: id 0xf90e, RD set.
    const BUSYBOX_QUERY: &str = "f90e0100000100000000000004446f6373074578616d706c65034f52470000010001";

    fn unhex(s: &str) -> Vec<u8> {
        let digit = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not hex: {c}"),
        };
        s.as_bytes()
            .chunks(2)
            .map(|p| (digit(p[0]) << 4) | digit(p[1]))
            .collect()
    }

    /// A query with this header (flags, question count) and name given as wire labels.
    fn packet(id: u16, flags: u16, questions: u16, labels: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend(flags.to_be_bytes());
        p.extend(questions.to_be_bytes());
        p.extend([0; 6]);
        for l in labels {
            p.push(l.len() as u8);
            p.extend_from_slice(l);
        }
        p.push(0);
        p.extend(qtype.to_be_bytes());
        p.extend(1u16.to_be_bytes());
        p
    }

    /// A recursive query for a dotted name.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let labels: Vec<&[u8]> = name
            .split('.')
            .filter(|l| !l.is_empty())
            .map(str::as_bytes)
            .collect();
        packet(0x1234, 0x0100, 1, &labels, qtype)
    }

    fn error(p: &[u8]) -> DnsError {
        parse_query(p).expect_err("refused")
    }

    #[test]
    fn a_captured_busybox_query_parses() {
        let q = parse_query(&unhex(BUSYBOX_QUERY));
        assert_eq!(
            q,
            Ok(Query {
                id: 0xf90e,
                name: "docs.example.org".into(),
                qtype: 1
            })
        );
    }

    #[test]
    fn a_query_with_an_edns_record_parses_and_the_record_is_ignored() {
        let mut p = query("Exfil.Test", 16);
        p[11] = 1; // ARCOUNT
        p.extend([0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]); // OPT, 4096 bytes, DO
        assert_eq!(
            parse_query(&p),
            Ok(Query {
                id: 0x1234,
                name: "exfil.test".into(),
                qtype: 16
            })
        );
    }

    #[test]
    fn the_refusal_echoes_id_opcode_rd_and_question() {
        for (flags, rd) in [(0x0100u16, 0x01u8), (0x0000, 0x00), (0x0130, 0x01)] {
            let mut p = packet(0xbeef, flags, 1, &[b"A1b2", b"exfil", b"test"], 28);
            p[11] = 1;
            p.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
            let r = refused(&p).expect("a query");
            let question_end = p.len() - 11;
            assert_eq!(r.len(), question_end);
            assert_eq!(&r[..2], &[0xbe, 0xef]);
            assert_eq!(r[2], 0x80 | rd, "QR, opcode 0, AA 0, TC 0, RD copied");
            assert_eq!(r[3], 5, "RA 0, Z/AD/CD 0, RCODE REFUSED");
            assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
            assert_eq!(&r[12..], &p[12..question_end], "question echoed as sent");
            assert_eq!(error(&r), DnsError::Response);
            let mut as_query = r.clone();
            as_query[2] &= 0x7f;
            assert_eq!(
                parse_query(&as_query),
                Ok(Query {
                    id: 0xbeef,
                    name: "a1b2.exfil.test".into(),
                    qtype: 28
                })
            );
        }
    }

    #[test]
    fn the_root_name_is_a_dot() {
        assert_eq!(parse_query(&query(".", 2)).map(|q| q.name).as_deref(), Ok("."));
    }

    #[test]
    fn bytes_that_are_not_printable_are_escaped() {
        let p = packet(1, 0, 1, &[b"A\0 .\\\xffb~", b"Example"], 1);
        assert_eq!(
            parse_query(&p).map(|q| q.name).as_deref(),
            Ok("a\\000\\032\\046\\092\\255b~.example")
        );
    }

    #[test]
    fn a_response_is_refused() {
        assert_eq!(error(&packet(1, 0x8180, 1, &[b"a"], 1)), DnsError::Response);
        assert_eq!(refused(&packet(1, 0x8180, 1, &[b"a"], 1)), None);
    }

    #[test]
    fn an_opcode_other_than_query_is_refused() {
        assert_eq!(error(&packet(1, 2 << 11, 1, &[b"a"], 1)), DnsError::Opcode(2));
        assert_eq!(error(&packet(1, 5 << 11, 1, &[b"a"], 6)), DnsError::Opcode(5));
    }

    #[test]
    fn a_question_count_other_than_one_is_refused() {
        assert_eq!(error(&packet(1, 0, 0, &[b"a"], 1)), DnsError::QuestionCount(0));
        assert_eq!(error(&packet(1, 0, 2, &[b"a"], 1)), DnsError::QuestionCount(2));
    }

    #[test]
    fn a_compression_pointer_in_the_question_is_refused() {
        let mut p = packet(1, 0, 1, &[b"a"], 1);
        p.truncate(14);
        p.extend([0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(error(&p), DnsError::CompressionPointer);
    }

    #[test]
    fn a_label_over_63_bytes_is_refused() {
        let long = [b'a'; 64];
        assert_eq!(
            error(&packet(1, 0, 1, &[&long, b"test"], 1)),
            DnsError::LabelTooLong { len: 64 }
        );
        // The extended label types 0b01 and 0b10 read as long labels.
        let mut p = packet(1, 0, 1, &[], 1);
        p[12] = 0x41;
        assert_eq!(error(&p), DnsError::LabelTooLong { len: 0x41 });
        assert!(parse_query(&packet(1, 0, 1, &[&long[..63]], 1)).is_ok());
    }

    #[test]
    fn a_name_over_255_wire_bytes_is_refused() {
        let l = [b'a'; 63];
        assert!(parse_query(&packet(1, 0, 1, &[&l, &l, &l, &l[..61]], 1)).is_ok());
        assert_eq!(
            error(&packet(1, 0, 1, &[&l, &l, &l, &l[..62]], 1)),
            DnsError::NameTooLong
        );
    }

    #[test]
    fn every_truncation_of_a_query_is_refused() {
        let p = unhex(BUSYBOX_QUERY);
        for n in 0..p.len() {
            assert!(matches!(error(&p[..n]), DnsError::Truncated(_)), "{n}");
            assert_eq!(refused(&p[..n]), None);
        }
    }

    #[test]
    fn a_packet_over_4096_bytes_is_refused() {
        let mut p = query("example.org", 1);
        p.resize(MAX_PACKET, 0);
        assert!(parse_query(&p).is_ok());
        p.push(0);
        assert_eq!(error(&p), DnsError::TooLarge { len: 4097 });
        assert_eq!(refused(&p), None);
    }

    #[test]
    fn mutated_packets_never_panic() {
        let bases = [unhex(BUSYBOX_QUERY), query("a1b2.exfil.test", 16)];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..30_000 {
            let mut p = bases[i % bases.len()].clone();
            for _ in 0..=next() % 4 {
                let at = (next() % p.len() as u64) as usize;
                p[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xc0,
                    2 => 0x3f,
                    _ => next() as u8,
                };
            }
            let end = (next() % (p.len() as u64 + 1)) as usize;
            for bytes in [&p[..], &p[..end]] {
                if let Some(r) = refused(bytes) {
                    assert_eq!(r[..2], bytes[..2]);
                    assert_eq!(r[3], REFUSED);
                }
                let _ = parse_query(bytes);
            }
            let noise: Vec<u8> = (0..next() % 300).map(|_| next() as u8).collect();
            let _ = refused(&noise);
        }
    }

    #[test]
    fn a_thousand_names_under_one_domain_are_one_group() {
        let mut r = Refusals::new(16);
        for i in 0..1000u32 {
            r.record(&format!("{:08x}.exfil.test", i.wrapping_mul(2_654_435_761)), 1);
        }
        let d = r.drain();
        assert_eq!(d.overflow, 0);
        assert_eq!(d.groups.len(), 1);
        let g = &d.groups[0];
        assert_eq!((g.group.as_str(), g.count), ("exfil.test", 1000));
        assert_eq!(
            g.examples,
            [
                "00000000.exfil.test",
                "9e3779b1.exfil.test",
                "3c6ef362.exfil.test"
            ]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn groups_are_the_last_two_labels() {
        let mut r = Refusals::new(16);
        r.record("a1b2.Exfil.Test.", 2);
        r.record("localhost", 1);
        r.record(".", 1);
        r.record("a.b.c.example.org", 1);
        r.record("x\\046y.example.org", 1);
        r.record("ignored.example", 0);
        let groups: Vec<(String, u64)> = r.drain().groups.into_iter().map(|g| (g.group, g.count)).collect();
        assert_eq!(
            groups,
            [
                ("example.org".to_string(), 2),
                ("exfil.test".to_string(), 2),
                (".".to_string(), 1),
                ("localhost".to_string(), 1),
            ]
        );
    }

    #[test]
    fn examples_are_distinct_and_cut_to_100_bytes() {
        let mut r = Refusals::new(4);
        // 121 bytes; byte 100 falls inside an `é`, so the cut keeps 99.
        let long = format!("a{}.x.example", "é".repeat(60));
        r.record(&long, 1);
        r.record(&long, 1);
        r.record("b.x.example", 1);
        let examples = r.drain().groups.remove(0).examples;
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].len(), 99);
        assert!(long.starts_with(&examples[0]));
        assert_eq!(examples[1], "b.x.example");
    }

    #[test]
    fn groups_past_the_cap_only_count_as_overflow() {
        let mut r = Refusals::new(2);
        r.record("a.one.test", 1);
        r.record("a.two.test", 3);
        r.record("a.three.test", 5);
        r.record("b.three.test", 7);
        r.record("b.one.test", 1);
        assert!(!r.is_empty());
        let d = r.drain();
        let names: Vec<(&str, u64)> = d.groups.iter().map(|g| (g.group.as_str(), g.count)).collect();
        assert_eq!(names, [("two.test", 3), ("one.test", 2)]);
        assert_eq!(d.overflow, 12);
        assert!(r.is_empty());
        let mut none = Refusals::new(0);
        none.record("a.test", u32::MAX);
        none.record("a.test", u32::MAX);
        assert_eq!(
            none.drain(),
            Drained {
                groups: vec![],
                overflow: 2 * u64::from(u32::MAX)
            }
        );
    }

    #[test]
    fn drain_sorts_by_count_then_name_and_starts_afresh() {
        let mut r = Refusals::new(8);
        r.record("z.b.test", 1);
        r.record("y.a.test", 1);
        r.record("x.c.test", 4);
        let order: Vec<String> = r.drain().groups.into_iter().map(|g| g.group).collect();
        assert_eq!(order, ["c.test", "a.test", "b.test"]);
        assert!(r.is_empty());
        assert_eq!(
            r.drain(),
            Drained {
                groups: vec![],
                overflow: 0
            }
        );
        r.record("a.test", 1);
        assert_eq!(r.drain().groups.len(), 1);
    }
}
