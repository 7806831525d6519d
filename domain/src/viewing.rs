//! How an operator's live view is delivered (shared by the streaming wire format and the ledger's
//! record of an operator's input).

use serde::{Deserialize, Serialize};

/// How a viewer wants video delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// A WebRTC peer connection (`"webrtc"`).
    WebRtc,
    /// Access units over the WebSocket, decoded with WebCodecs (`"webcodecs"`).
    WebCodecs,
    /// No video: stills only (`"none"`).
    None,
}
