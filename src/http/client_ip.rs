//! The client's address: the socket's peer, or, behind proxies the app trusts, the address
//! they say they forwarded for (`X-Forwarded-For`). Never the header alone: any client can
//! send one.

use std::net::IpAddr;

use super::request::Request;
use crate::error::ConfigurationError;

/// The proxies whose `X-Forwarded-For` is believed: addresses or CIDR ranges
/// (`10.0.0.0/8`, `::1`). With none (the default), the client is the socket's peer.
///
/// ```
/// use chirp::http::TrustedProxies;
/// let proxies = TrustedProxies::new(["127.0.0.1", "10.0.0.0/8"]).unwrap();
/// assert!(TrustedProxies::new(["not an address"]).is_err());
/// # let _ = proxies;
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<(IpAddr, u8)>,
}

/// The client address a middleware with trusted proxies resolved, for the ones after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl TrustedProxies {
    /// Trusts each of `proxies` (an address, or `address/prefix`). A malformed one is a
    /// [`ConfigurationError`].
    pub fn new<I, S>(proxies: I) -> Result<TrustedProxies, ConfigurationError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut ranges = Vec::new();
        for proxy in proxies {
            let text = proxy.as_ref().trim();
            let bad = || {
                ConfigurationError::new(format!(
                    "trusted proxy {text:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8)"
                ))
            };
            let (addr, prefix) = match text.split_once('/') {
                Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
                None => (text, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix.unwrap_or(max);
            if prefix > max {
                return Err(bad());
            }
            ranges.push((addr, prefix));
        }
        Ok(TrustedProxies { ranges })
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges
            .iter()
            .any(|&(net, prefix)| in_range(ip, net, prefix))
    }

    /// The client of `req`: its peer, unless the peer is a trusted proxy; then the last
    /// address of `X-Forwarded-For` that is not one (right to left: each proxy appends the
    /// address it received from). A malformed entry ends the walk at the hop before it.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.contains(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }
}

fn in_range(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl Request {
    /// The client's address: the one a middleware with [`TrustedProxies`] resolved from
    /// `X-Forwarded-For`, else the socket's peer (`None` for a request built in code).
    pub fn client_ip(&self) -> Option<IpAddr> {
        match self.extensions().get::<ClientIp>() {
            Some(ClientIp(ip)) => Some(*ip),
            None => self.peer_addr().map(|a| a.ip()),
        }
    }

    /// Records the client address resolved through trusted proxies, for later middleware.
    pub(crate) fn set_client_ip(&mut self, ip: IpAddr) {
        self.extensions_mut().insert(ClientIp(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = TrustedProxies::new(["10.0.0.0/8", "::1", "192.168.1.7"]).unwrap();
        assert!(p.contains("10.2.3.4".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(p.contains("::1".parse().unwrap()));
        assert!(p.contains("192.168.1.7".parse().unwrap()));
        assert!(!p.contains("192.168.1.8".parse().unwrap()));
        assert!(TrustedProxies::new(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::new(["0.0.0.0/0"])
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
