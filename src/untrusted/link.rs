//! Which links vtriage offers as a fix (shows, copies, opens, writes): `https` to Tesla's pairing page,
//! Smartcar's documentation or the configured Connect origin. Anything else a server sends is evidence text.

use url::Url;

/// Smartcar's documentation hosts; a link to them must also be under `/docs`.
const DOCS_HOSTS: [&str; 2] = ["smartcar.com", "www.smartcar.com"];
/// Tesla's virtual-key pairing page: `https://www.tesla.com/_ak/<domain>`.
const TESLA_HOST: &str = "www.tesla.com";

/// Why a link is not offered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectedLink {
    #[error("it is empty")]
    Empty,
    #[error("it starts with '-', which a program would read as an option")]
    LooksLikeOption,
    #[error("it holds whitespace or control characters")]
    HiddenCharacters,
    #[error("it is not a URL: {0}")]
    NotAUrl(#[from] url::ParseError),
    #[error("it carries a user name or password")]
    UserInfo,
    #[error("it is {0}, not https")]
    NotHttps(String),
    #[error("{0} is not Tesla's pairing page, Smartcar's documentation or the Connect origin")]
    HostNotAllowed(String),
}

/// Whether `link` points at this machine (a simulator's Connect page): it works only while that
/// process runs, so it is no link to send a customer.
pub fn is_local(link: &str) -> bool {
    url::Url::parse(link.trim()).is_ok_and(|url| crate::smartcar::origin::is_loopback(&url))
}

/// What follows a local link wherever it is shown.
pub const LOCAL_NOTE: &str = "(local simulator link, not for a customer)";

/// The configured Connect origin, as data: links to it are offered whatever its scheme (the simulator
/// serves Connect over loopback http), since the person running vtriage chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// The rule for fix links. Built from the Connect origin in the settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkPolicy {
    connect: Option<Origin>,
}

impl LinkPolicy {
    /// Allows Tesla's pairing page, Smartcar's documentation and `connect_origin` (when it parses).
    pub fn new(connect_origin: &str) -> LinkPolicy {
        let connect = Url::parse(connect_origin.trim())
            .ok()
            .filter(|u| u.username().is_empty() && u.password().is_none())
            .and_then(|u| {
                Some(Origin {
                    scheme: u.scheme().to_string(),
                    host: u.host_str()?.to_ascii_lowercase(),
                    port: u.port_or_known_default(),
                })
            });
        LinkPolicy { connect }
    }

    /// The link as it may be offered, or why not. The link is checked as given: nothing is trimmed or
    /// repaired, so what is offered is exactly what was vetted.
    pub fn vet<'a>(&self, link: &'a str) -> Result<&'a str, RejectedLink> {
        if link.is_empty() {
            return Err(RejectedLink::Empty);
        }
        if link.starts_with('-') {
            return Err(RejectedLink::LooksLikeOption);
        }
        // The URL parser drops tabs and newlines and trims spaces; a link that needs that is not offered.
        if link
            .chars()
            .any(|c| c.is_whitespace() || super::text::is_unsafe(c))
        {
            return Err(RejectedLink::HiddenCharacters);
        }
        let url = Url::parse(link)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RejectedLink::UserInfo);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if let Some(c) = &self.connect
            && url.scheme() == c.scheme
            && host == c.host
            && url.port_or_known_default() == c.port
        {
            return Ok(link);
        }
        if url.scheme() != "https" {
            return Err(RejectedLink::NotHttps(format!("{}:", url.scheme())));
        }
        let default_port = url.port().is_none();
        let path = url.path();
        let tesla_pairing = host == TESLA_HOST
            && path
                .strip_prefix("/_ak/")
                .is_some_and(|domain| !domain.is_empty() && !domain.contains('/'));
        let docs =
            DOCS_HOSTS.contains(&host.as_str()) && (path == "/docs" || path.starts_with("/docs/"));
        if default_port && (tesla_pairing || docs) {
            Ok(link)
        } else {
            Err(RejectedLink::HostNotAllowed(
                super::text::one_line(url.host_str().unwrap_or("a link without a host"))
                    .into_owned(),
            ))
        }
    }

    pub fn allows(&self, link: &str) -> bool {
        self.vet(link).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LinkPolicy {
        LinkPolicy::new("https://connect.smartcar.com")
    }

    #[test]
    fn pairing_page_docs_and_connect_origin_are_offered() {
        let p = policy();
        for link in [
            "https://www.tesla.com/_ak/smartcar.com",
            "https://smartcar.com/docs/errors/api-errors/connected-services-account-errors#virtual-key-required",
            "https://www.smartcar.com/docs",
            "https://connect.smartcar.com/oauth/reauthenticate?response_type=vehicle_id&client_id=x&vehicle_id=v1",
            "HTTPS://WWW.TESLA.COM/_ak/fleet.example.com",
        ] {
            assert_eq!(p.vet(link), Ok(link), "{link}");
        }
    }

    #[test]
    fn a_link_to_this_machine_is_local_and_one_to_smartcar_is_not() {
        assert!(is_local("http://127.0.0.1:4000/oauth/reauthenticate?x=1"));
        assert!(is_local("http://[::1]:4000/"));
        assert!(is_local("http://LOCALHOST/x"));
        assert!(!is_local(
            "https://connect.smartcar.com/oauth/reauthenticate"
        ));
        assert!(!is_local("not a url"));
    }

    #[test]
    fn a_configured_loopback_connect_origin_is_offered_over_http() {
        let p = LinkPolicy::new("http://127.0.0.1:4010");
        assert!(p.allows("http://127.0.0.1:4010/oauth/reauthenticate?vehicle_id=v1"));
        assert!(!p.allows("http://127.0.0.1:4011/oauth/reauthenticate"));
        assert!(!policy().allows("http://127.0.0.1:4010/oauth/reauthenticate"));
    }

    #[test]
    fn hostile_links_are_refused() {
        let p = policy();
        for (link, why) in [
            ("javascript:alert(1)", "NotHttps"),
            ("file:///etc/passwd", "NotHttps"),
            ("data:text/html,<script>alert(1)</script>", "NotHttps"),
            ("http://www.tesla.com/_ak/smartcar.com", "NotHttps"),
            ("https://evil.example/_ak/smartcar.com", "HostNotAllowed"),
            ("https://www.tesla.com.evil.example/_ak/x", "HostNotAllowed"),
            ("https://www.tesla.com/account", "HostNotAllowed"),
            ("https://smartcar.com/pricing", "HostNotAllowed"),
            ("https://smartcar.com/docsevil", "HostNotAllowed"),
            ("https://smartcar.com:8443/docs", "HostNotAllowed"),
            ("https://smartcar.com@evil.com/docs", "UserInfo"),
            ("https://user:pw@smartcar.com/docs", "UserInfo"),
            ("--version", "LooksLikeOption"),
            ("-https://smartcar.com/docs", "LooksLikeOption"),
            (" https://smartcar.com/docs", "HiddenCharacters"),
            ("https://smartcar.com/docs\n", "HiddenCharacters"),
            ("https://smartcar.com/do\tcs", "HiddenCharacters"),
            (
                "https://smartcar.com/docs/\u{202E}gpj.exe",
                "HiddenCharacters",
            ),
            ("https://smartcar.com/docs/\x1b[2J", "HiddenCharacters"),
            ("", "Empty"),
            ("smartcar.com/docs", "NotAUrl"),
        ] {
            let got = p.vet(link);
            assert!(
                got.as_ref()
                    .is_err_and(|e| format!("{e:?}").starts_with(why)),
                "{link:?}: {got:?}"
            );
        }
    }

    #[test]
    fn an_unparsable_connect_origin_allows_only_the_fixed_hosts() {
        let p = LinkPolicy::new("not a url");
        assert!(p.allows("https://www.tesla.com/_ak/smartcar.com"));
        assert!(!p.allows("https://connect.smartcar.com/oauth/authorize"));
    }
}
