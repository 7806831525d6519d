//! Per-stream flow control: credit-based windows, the same on both ends of a stream.
//!
//! Each side may send at most [`STREAM_WINDOW`] bytes the other has not yet consumed. The receiver
//! grants credit back as its application consumes data, in batches of at least half a window so
//! credit messages stay rare. A peer that sends past its credit or grants more credit than was
//! ever used breaks the stream (not the channel): the stream is closed with the error's sentence.

use crate::{MAX_STREAM_CHUNK, STREAM_WINDOW};

/// Why a peer's stream message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// Data beyond the credit this side granted.
    #[error("the peer sent {got} bytes with only {credit} bytes of credit left on the stream")]
    Overrun {
        /// Bytes sent.
        got: usize,
        /// Credit left.
        credit: u32,
    },
    /// Credit for more bytes than this side has sent and not yet had credited.
    #[error("the peer granted {got} bytes of credit, more than the {outstanding} bytes in flight")]
    Overcredit {
        /// Credit granted.
        got: u32,
        /// Bytes sent and not yet credited.
        outstanding: u32,
    },
}

/// One stream's flow state, seen from one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Bytes this side may still send.
    send_credit: u32,
    /// Bytes the peer may still send before this side grants more.
    recv_credit: u32,
    /// Bytes received and consumed but not yet credited back.
    consumed: u32,
}

impl Default for Flow {
    fn default() -> Self {
        Flow {
            send_credit: STREAM_WINDOW,
            recv_credit: STREAM_WINDOW,
            consumed: 0,
        }
    }
}

impl Flow {
    /// How many bytes the next data message may carry: 0 means wait for credit.
    pub fn sendable(&self) -> usize {
        (self.send_credit as usize).min(MAX_STREAM_CHUNK)
    }

    /// Records `n` bytes sent (at most [`sendable`](Self::sendable)).
    pub fn sent(&mut self, n: usize) {
        self.send_credit = self
            .send_credit
            .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Records credit the peer granted.
    pub fn credited(&mut self, n: u32) -> Result<(), FlowError> {
        let outstanding = STREAM_WINDOW - self.send_credit;
        if n > outstanding {
            return Err(FlowError::Overcredit { got: n, outstanding });
        }
        self.send_credit += n;
        Ok(())
    }

    /// Records `n` bytes the peer sent; an error if they exceed its credit.
    pub fn received(&mut self, n: usize) -> Result<(), FlowError> {
        match u32::try_from(n) {
            Ok(m) if m <= self.recv_credit => {
                self.recv_credit -= m;
                Ok(())
            }
            _ => Err(FlowError::Overrun {
                got: n,
                credit: self.recv_credit,
            }),
        }
    }

    /// Records `n` received bytes the application consumed; returns the credit to grant the peer
    /// now, if enough has accumulated (half a window) or the peer is nearly out.
    pub fn consumed(&mut self, n: usize) -> Option<u32> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.consumed = self
            .consumed
            .saturating_add(n)
            .min(STREAM_WINDOW - self.recv_credit);
        if self.consumed >= STREAM_WINDOW / 2
            || (self.consumed > 0 && self.recv_credit < MAX_STREAM_CHUNK as u32)
        {
            let grant = std::mem::take(&mut self.consumed);
            self.recv_credit += grant;
            Some(grant)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_stops_at_the_window_and_resumes_on_credit() {
        let mut f = Flow::default();
        let mut sent = 0;
        while f.sendable() > 0 {
            let n = f.sendable();
            f.sent(n);
            sent += n;
        }
        assert_eq!(sent, STREAM_WINDOW as usize);
        f.credited(1000).expect("credit for bytes in flight");
        assert_eq!(f.sendable(), 1000);
    }

    #[test]
    fn data_past_the_credit_is_an_overrun() {
        let mut f = Flow::default();
        f.received(STREAM_WINDOW as usize).expect("a whole window");
        assert_eq!(f.received(1), Err(FlowError::Overrun { got: 1, credit: 0 }));
    }

    #[test]
    fn credit_for_bytes_never_sent_is_refused() {
        let mut f = Flow::default();
        f.sent(10);
        assert_eq!(
            f.credited(11),
            Err(FlowError::Overcredit {
                got: 11,
                outstanding: 10
            })
        );
    }

    #[test]
    fn credit_is_granted_in_batches_and_restores_the_window() {
        let mut f = Flow::default();
        f.received(MAX_STREAM_CHUNK).expect("within the window");
        assert_eq!(f.consumed(MAX_STREAM_CHUNK), None, "a small consumption waits");
        let rest = STREAM_WINDOW as usize - MAX_STREAM_CHUNK;
        f.received(rest).expect("the rest of the window");
        assert_eq!(f.consumed(rest), Some(STREAM_WINDOW));
        f.received(STREAM_WINDOW as usize)
            .expect("the whole window is open again");
    }

    #[test]
    fn consuming_more_than_was_received_grants_no_extra_credit() {
        let mut f = Flow::default();
        f.received(100).expect("within the window");
        assert_eq!(
            f.consumed(1_000_000),
            None,
            "100 bytes are not worth a credit message"
        );
        f.received(STREAM_WINDOW as usize - 100)
            .expect("the rest of the window");
        assert_eq!(f.consumed(usize::MAX), Some(STREAM_WINDOW));
        assert!(f.received(STREAM_WINDOW as usize).is_ok());
        assert!(f.received(1).is_err());
    }
}
