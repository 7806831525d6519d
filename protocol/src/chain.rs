//! Turning a typed error into the one line a peer, a client or a log reads.

use std::error::Error;

/// `err` and every cause under it, joined with ": ", e.g. "cannot write to the host: broken pipe".
/// Used where an error leaves a program as text: a protocol reply, an API error body, a log line.
pub fn error_chain(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain as chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_is_joined() {
        let e = Outer(Middle(std::io::Error::other("inner")));
        assert_eq!(chain(&e), "outer: middle: inner");
        assert_eq!(chain(&std::io::Error::other("alone")), "alone");
    }
}
