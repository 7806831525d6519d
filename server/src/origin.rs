//! Which web origins may call the MCP endpoint. A browser page on another site can reach a
//! loopback server (DNS rebinding makes its requests look same-origin to the browser), so the
//! MCP transport spec requires servers to check `Origin`: requests without one (programs, not
//! browsers) and from loopback origins are served; any other origin must be listed.

/// The origins allowed besides loopback ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    extra: Vec<String>,
}

/// Why an origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requests from the web origin {origin:?} are refused: only loopback origins{} may call the MCP endpoint (allow another with `airlock serve --mcp-allow-origin ORIGIN`)", listed(.extra))]
pub struct OriginRefused {
    /// The origin as sent.
    pub origin: String,
    extra: Vec<String>,
}

fn listed(extra: &[String]) -> String {
    if extra.is_empty() {
        String::new()
    } else {
        format!(" and {}", extra.join(", "))
    }
}

impl Origins {
    /// Loopback origins and these (exact `scheme://host[:port]`, compared without regard to case
    /// and without a trailing slash).
    pub fn new(extra: impl IntoIterator<Item = String>) -> Origins {
        Origins {
            extra: extra.into_iter().map(|o| normalise(&o)).collect(),
        }
    }

    /// Checks an `Origin` header value; `None` (no header) is allowed.
    pub fn check(&self, origin: Option<&str>) -> Result<(), OriginRefused> {
        let Some(origin) = origin else {
            return Ok(());
        };
        let o = normalise(origin);
        if is_loopback_origin(&o) || self.extra.contains(&o) {
            Ok(())
        } else {
            Err(OriginRefused {
                origin: origin.to_string(),
                extra: self.extra.clone(),
            })
        }
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `http(s)://` with a loopback host (`localhost`, `127.x.y.z`, `[::1]`) and an optional port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(valid_port) => {
                return h == "::1"
            }
            _ => return false,
        }
    } else {
        match rest.split_once(':') {
            Some((h, port)) if valid_port(port) => h,
            Some(_) => return false,
            None => rest,
        }
    };
    if host == "localhost" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// One to five digits.
fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_without_an_origin_are_served() {
        assert!(Origins::default().check(None).is_ok());
    }

    #[test]
    fn loopback_origins_are_served() {
        let o = Origins::default();
        for origin in [
            "http://127.0.0.1:7878",
            "http://localhost",
            "https://localhost:8443",
            "http://[::1]:7878",
            "http://127.1.2.3",
            "HTTP://LOCALHOST:7878/",
        ] {
            assert!(o.check(Some(origin)).is_ok(), "{origin}");
        }
    }

    #[test]
    fn foreign_origins_are_refused_with_a_reason() {
        let o = Origins::default();
        for origin in [
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://127.0.0.1:7878@evil.example",
            "null",
            "file://",
            "http://[::2]:80",
            "http://localhost:port",
            "tauri://localhost",
        ] {
            let e = o.check(Some(origin)).expect_err(origin);
            assert!(e.to_string().contains("only loopback origins"), "{e}");
        }
    }

    #[test]
    fn listed_origins_are_served() {
        let o = Origins::new(["https://console.example.org/".to_string()]);
        assert!(o.check(Some("https://console.example.org")).is_ok());
        assert!(o.check(Some("https://other.example.org")).is_err());
    }
}
