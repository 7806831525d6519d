//! `airlock serve`'s HTTP side, on one loopback listener: the operator API under `/api`
//! ([`operator`], operator bearer tokens from [`tokens`]), the MCP endpoint under `/mcp` (the
//! `airlock-mcp` service over rmcp's Streamable HTTP transport, agent tokens, the [`origin`]
//! check), and the built console and its stand-alone viewer ([`serve`]). The typed requests both
//! this and the desktop app send live in `airlock_supervisor::api`; this crate only parses HTTP into
//! them and answers.

pub mod access;
pub mod operator;
pub mod origin;
pub mod serve;
pub mod tokens;
