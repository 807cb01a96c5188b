//! `--console-url`: the URL browsers reach the console at, when that is not what the
//! request says (moor on plain HTTP behind a TLS-terminating proxy or an Ingress).
//! With it, the OIDC `redirect_uri` is built from it rather than from the request's
//! `Host` header, and the console's cookies are `Secure` when it is `https`.

use std::fmt;
use std::str::FromStr;

/// The console's public URL: an absolute `http` or `https` URL of the host moor is
/// served at the root of (the console's links are `/console/...` of that host), kept
/// as its origin (`https://moor.example.com`, the default port left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleUrl {
    origin: String,
    https: bool,
}

/// Why a `--console-url` is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConsoleUrlError(String);

impl ConsoleUrl {
    /// Whether browsers reach the console over TLS (its cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The OIDC `redirect_uri`: `URL/console/oidc/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("{}/console/oidc/callback", self.origin)
    }
}

impl fmt::Display for ConsoleUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

impl FromStr for ConsoleUrl {
    type Err = ConsoleUrlError;

    /// Accepts `http(s)://HOST[:PORT]` with no path (or `/`), query, fragment or
    /// credentials.
    fn from_str(s: &str) -> Result<Self, ConsoleUrlError> {
        let refuse = |why: String| Err(ConsoleUrlError(why));
        let example = "such as https://moor.example.com";
        let s = s.trim();
        if !s.contains("://") {
            return refuse(format!(
                "not an absolute URL: give the scheme and host, {example}"
            ));
        }
        let url = match reqwest::Url::parse(s) {
            Ok(url) => url,
            Err(e) => return refuse(format!("not a URL ({e}): expected one {example}")),
        };
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return refuse(format!(
                    "the scheme must be https or http, not {other}: expected a URL {example}"
                ));
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return refuse(format!("names no host: expected a URL {example}"));
        }
        let origin = url.origin().ascii_serialization();
        if !url.username().is_empty() || url.password().is_some() {
            return refuse(format!(
                "must not carry a user name or password: give {origin}"
            ));
        }
        if let Some(q) = url.query() {
            return refuse(format!("must not have a query (?{q}): give {origin}"));
        }
        if let Some(f) = url.fragment() {
            return refuse(format!("must not have a fragment (#{f}): give {origin}"));
        }
        let path = url.path();
        if path.trim_end_matches('/') == "/console" {
            return refuse(format!(
                "a path ({path}) is not supported: give the URL moor is served at, \
                 without /console: {origin}"
            ));
        }
        if path != "/" {
            return refuse(format!(
                "a path ({path}) is not supported: the console's links and cookies are at \
                 /console/ of the host's root, so moor must be served at the root of its \
                 host: give {origin}"
            ));
        }
        Ok(ConsoleUrl { origin, https })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ConsoleUrl, String> {
        s.parse::<ConsoleUrl>().map_err(|e| e.to_string())
    }

    #[test]
    fn an_origin_with_or_without_its_slash_and_port() {
        let u = parse("https://moor.example.com").unwrap();
        assert!(u.is_https());
        assert_eq!(
            u.redirect_uri(),
            "https://moor.example.com/console/oidc/callback"
        );
        assert_eq!(parse("https://moor.example.com/").unwrap(), u);
        assert_eq!(parse("https://moor.example.com:443/").unwrap(), u);
        assert_eq!(parse("HTTPS://Moor.Example.COM").unwrap(), u);
        let u = parse("http://127.0.0.1:8080").unwrap();
        assert!(!u.is_https());
        assert_eq!(u.to_string(), "http://127.0.0.1:8080");
        assert_eq!(
            parse("https://[::1]:8443").unwrap().redirect_uri(),
            "https://[::1]:8443/console/oidc/callback"
        );
    }

    #[test]
    fn anything_else_is_refused_saying_why() {
        for (bad, why) in [
            ("moor.example.com", "not an absolute URL"),
            ("ftp://x", "the scheme must be https or http, not ftp"),
            ("file:///etc", "the scheme must be https or http, not file"),
            ("https://x/?a=b", "must not have a query"),
            ("https://x/?", "must not have a query"),
            ("https://x/#top", "must not have a fragment"),
            ("https://u:p@x/", "user name or password"),
            ("https://x/moor", "a path (/moor) is not supported"),
            ("https://x/console/", "without /console: https://x"),
            (
                "https://x:8443/a?b",
                "must not have a query (?b): give https://x:8443",
            ),
            ("https://", "not a URL"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
