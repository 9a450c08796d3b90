//! The two URL forms Twilio's validators accept (WIRE.md 3.2), and the
//! `bodySHA256` query parameter of JSON webhooks (3.1).
//!
//! Twilio's back end signs "inconsistently" with or without the port, so a
//! signature is good if it matches either form: the URL with *any* port
//! removed, or with the scheme's default port (`:443` for https, `:80`
//! otherwise) added when it has none. The URL is split the way twilio-node
//! 6.2 splits it (no normalisation; user info and IPv6 literals kept), which
//! agrees with twilio-python 9.13 on every URL PY handles correctly (PY cuts
//! `user:pass@host:port` at the first colon). twilio-node's extra fallbacks
//! (re-encoding the URL with WHATWG `new URL()` and legacy `querystring`) are
//! deliberately not mirrored: Twilio signs the URL as configured.

/// Why a URL cannot be checked (the caller's mistake, not a bad signature).
pub type UrlError = String;

/// A URL split into what the port variants need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl<'a> {
    /// `https://`, as written.
    scheme: &'a str,
    /// `user:pass@` or empty.
    user_info: &'a str,
    /// Host name or `[v6]` literal.
    host: &'a str,
    /// `:8080` or empty.
    port: &'a str,
    /// Path, query and fragment, as written.
    rest: &'a str,
}

impl<'a> SplitUrl<'a> {
    /// Splits an absolute `http(s)://` URL; refuses anything else.
    pub fn parse(url: &'a str) -> Result<Self, UrlError> {
        let Some(scheme_end) = url.find("://") else {
            return Err(
                "must be the full URL Twilio requested, starting with https:// or http://".into(),
            );
        };
        let scheme_name = &url[..scheme_end];
        if !scheme_name.eq_ignore_ascii_case("https") && !scheme_name.eq_ignore_ascii_case("http") {
            return Err(format!(
                "must be an http or https URL, not {:?}",
                scheme_name.chars().take(16).collect::<String>()
            ));
        }
        let prefix = scheme_end + 3;
        let authority_len = url[prefix..]
            .find(['/', '?', '#'])
            .unwrap_or(url.len() - prefix);
        let authority = &url[prefix..prefix + authority_len];
        let host_at = authority.rfind('@').map_or(0, |at| at + 1);
        let (user_info, host_and_port) = authority.split_at(host_at);
        // A colon starts the port only after an IPv6 literal's closing bracket.
        let search_from = host_and_port.rfind(']').map_or(0, |at| at + 1);
        let (host, port) = match host_and_port[search_from..].find(':') {
            Some(colon) => host_and_port.split_at(search_from + colon),
            None => (host_and_port, ""),
        };
        if host.is_empty() {
            return Err("has no host".into());
        }
        if !port.is_empty() {
            let digits = &port[1..];
            let valid = !digits.is_empty()
                && digits.len() <= 5
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits
                    .parse::<u32>()
                    .is_ok_and(|p| (1..=65_535).contains(&p));
            if !valid {
                return Err("has an invalid port (expected 1 to 65535 after the colon)".into());
            }
        }
        Ok(SplitUrl {
            scheme: &url[..prefix],
            user_info,
            host,
            port,
            rest: &url[prefix + authority_len..],
        })
    }

    /// The URL with its port removed (unchanged when it has none).
    pub fn without_port(&self) -> String {
        [self.scheme, self.user_info, self.host, self.rest].concat()
    }

    /// The URL with the scheme's default port added when it has none.
    pub fn with_port(&self) -> String {
        let port = if !self.port.is_empty() {
            self.port
        } else if self.scheme.eq_ignore_ascii_case("https://") {
            ":443"
        } else {
            ":80"
        };
        [self.scheme, self.user_info, self.host, port, self.rest].concat()
    }

    /// The first non-empty `bodySHA256` query value, as Python's
    /// `parse_qs(query)["bodySHA256"][0]` finds it.
    pub fn body_sha256(&self) -> Option<&'a str> {
        let query = self.rest.split_once('?')?.1;
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, value)| *name == "bodySHA256" && !value.is_empty())
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_variants_match_the_sdks() {
        // (url, without port, with port): values printed by twilio-node 6.2's
        // removePort/addPort; PY agrees on all but the user-info-with-port row.
        for (url, without, with) in [
            (
                "https://example.com/a?x=1",
                "https://example.com/a?x=1",
                "https://example.com:443/a?x=1",
            ),
            (
                "https://example.com:443/a",
                "https://example.com/a",
                "https://example.com:443/a",
            ),
            (
                "http://example.com:8080/hook",
                "http://example.com/hook",
                "http://example.com:8080/hook",
            ),
            (
                "http://example.com",
                "http://example.com",
                "http://example.com:80",
            ),
            (
                "HTTPS://Example.com?q",
                "HTTPS://Example.com?q",
                "HTTPS://Example.com:443?q",
            ),
            (
                "https://user:pa:ss@example.com:8443/x",
                "https://user:pa:ss@example.com/x",
                "https://user:pa:ss@example.com:8443/x",
            ),
            (
                "https://[2001:db8::1]:8443/x",
                "https://[2001:db8::1]/x",
                "https://[2001:db8::1]:8443/x",
            ),
            (
                "https://[2001:db8::1]/x",
                "https://[2001:db8::1]/x",
                "https://[2001:db8::1]:443/x",
            ),
        ] {
            let split = SplitUrl::parse(url).expect(url);
            assert_eq!(split.without_port(), without, "{url}");
            assert_eq!(split.with_port(), with, "{url}");
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for (url, needle) in [
            ("", "full URL"),
            ("/relative/path", "full URL"),
            ("ftp://example.com/x", "http or https"),
            ("https:///path", "no host"),
            ("https://example.com:/x", "invalid port"),
            ("https://example.com:http/x", "invalid port"),
            ("https://example.com:70000/x", "invalid port"),
            ("https://example.com:0/x", "invalid port"),
        ] {
            let err = SplitUrl::parse(url).expect_err(url);
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn body_sha256_is_found_like_parse_qs() {
        for (url, expected) in [
            ("https://e.com/h?bodySHA256=abc", Some("abc")),
            (
                "https://e.com/h?a=1&bodySHA256=abc&bodySHA256=def",
                Some("abc"),
            ),
            ("https://e.com/h?bodySHA256=&bodySHA256=def", Some("def")),
            ("https://e.com/h?xbodySHA256=abc", None),
            ("https://e.com/h?bodySHA256=abc#frag", Some("abc")),
            ("https://e.com/bodySHA256=abc", None),
            ("https://e.com/h", None),
        ] {
            assert_eq!(
                SplitUrl::parse(url).expect(url).body_sha256(),
                expected,
                "{url}"
            );
        }
    }
}
