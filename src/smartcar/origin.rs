//! Decides whether an origin may receive credentials: https anywhere, plain http only on this
//! machine unless the person explicitly allows it. Pure: no I/O, no name resolution.

use std::net::IpAddr;

/// Why an origin is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("origin `{origin}` is not a URL: {reason}")]
    NotAUrl { origin: String, reason: String },
    #[error("origin `{origin}` is not an http(s) URL")]
    Scheme { origin: String },
    #[error(
        "{origin} is not encrypted: tokens would cross the network in clear text; use https or pass --allow-insecure-origin"
    )]
    Insecure { origin: String },
}

/// `Ok` for `https://…`, and for `http://…` on loopback (127.0.0.0/8, `::1`, `localhost`) or when
/// `allow_insecure` is set. Every request carries a bearer token or the management token, so a
/// plain-text origin elsewhere would hand them to anyone on the path.
pub fn check_origin(url: &str, allow_insecure: bool) -> Result<(), OriginError> {
    let parsed = url::Url::parse(url).map_err(|e| OriginError::NotAUrl {
        origin: url.to_string(),
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure || is_loopback(&parsed) => Ok(()),
        "http" => Err(OriginError::Insecure {
            origin: url.to_string(),
        }),
        _ => Err(OriginError::Scheme {
            origin: url.to_string(),
        }),
    }
}

/// Whether the URL's host is this machine: a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        // Names other than `localhost` are resolved by DNS, which may point anywhere.
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `host:port` of a URL (the scheme's default port when none is given), for an error line that
/// says where; the text as given when it is no URL.
pub fn place_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => crate::untrusted::text::one_line(url).into_owned(),
        },
        Err(_) => crate::untrusted::text::one_line(url).into_owned(),
    }
}

/// Why a connection failed, in a few words, from the innermost cause of an HTTP client's error
/// (`... tcp connect error: Connection refused (os error 111)` → `connection refused`).
pub fn transport_cause(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("connection refused") {
        return "connection refused".into();
    }
    if lower.contains("timed out") || lower.contains("timeout") {
        return "timed out".into();
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return "host name not found".into();
    }
    if lower.contains("connection reset") {
        return "connection reset".into();
    }
    let cause = message.rsplit(": ").next().unwrap_or(message);
    let cause = match cause.find(" (os error") {
        Some(at) => &cause[..at],
        None => cause,
    };
    crate::untrusted::text::one_line(cause).into_owned()
}

/// The URL an HTTP client's error names (`error sending request for url (URL)`), if any.
pub fn url_in(message: &str) -> Option<&str> {
    let start = message.find("url (")? + "url (".len();
    let rest = &message[start..];
    let end = rest.find(')')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_connection_is_said_with_its_place_and_reason() {
        let message = "error sending request for url (http://127.0.0.1:9/oauth2/token): client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(super::transport_cause(message), "connection refused");
        assert_eq!(
            super::url_in(message).map(super::place_of).as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(super::place_of("https://desk.example"), "desk.example:443");
    }

    use super::*;

    #[test]
    fn plain_http_is_refused_off_this_machine_unless_allowed() {
        for (origin, allowed, ok) in [
            ("https://api.smartcar.com", false, true),
            ("http://127.0.0.1:8080", false, true),
            ("http://127.3.4.5", false, true),
            ("http://[::1]:9000", false, true),
            ("http://localhost:3000", false, true),
            ("http://LOCALHOST", false, true),
            ("http://api.smartcar.com", false, false),
            ("http://localhost.evil.example", false, false),
            ("http://127.0.0.1.nip.io", false, false),
            ("http://10.0.0.8", false, false),
            ("http://[::ffff:8.8.8.8]", false, false),
            ("http://api.smartcar.com", true, true),
            ("ftp://127.0.0.1", true, false),
            ("not a url", true, false),
        ] {
            assert_eq!(
                check_origin(origin, allowed).is_ok(),
                ok,
                "{origin} allowed={allowed}"
            );
        }
    }

    #[test]
    fn refusal_says_why_and_what_to_do() {
        let m = check_origin("http://x", false)
            .map_err(|e| e.to_string())
            .err();
        assert_eq!(
            m.as_deref(),
            Some(
                "http://x is not encrypted: tokens would cross the network in clear text; use https or pass --allow-insecure-origin"
            )
        );
    }
}
