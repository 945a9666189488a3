//! Loopback guards shared by every emulator.
//!
//! The sandbox only ever listens on, and sends to, loopback addresses (127.0.0.0/8, `::1`,
//! `localhost`). These helpers make that a checked rule instead of a convention, so a typo
//! in a flag cannot point a webhook stream at a real host.

use std::net::{IpAddr, SocketAddr};

/// True when `addr` is a loopback socket address (127.0.0.0/8 or `::1`).
pub fn is_loopback_addr(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// True when the URL's host is a loopback address or `localhost`.
///
/// Returns false for URLs that cannot be parsed or have no host.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    // IPv6 hosts come back bracketed ("[::1]").
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_accepted_and_others_refused() {
        assert!(is_loopback_url("http://127.0.0.1:8080/webhooks/shop"));
        assert!(is_loopback_url("http://127.9.9.9/x"));
        assert!(is_loopback_url("http://localhost:1/x"));
        assert!(is_loopback_url("http://[::1]:8080/x"));
        assert!(!is_loopback_url("http://10.0.0.1/x"));
        assert!(!is_loopback_url("https://acme.myshopify.com/x"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn loopback_socket_addrs() {
        assert!(is_loopback_addr(&"127.0.0.1:0".parse().unwrap()));
        assert!(!is_loopback_addr(&"0.0.0.0:8070".parse().unwrap()));
    }
}
