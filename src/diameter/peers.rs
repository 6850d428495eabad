//! The peer table: which Diameter nodes may connect. Diameter carries no bearer token; an EIR
//! authorises its peers by their identity in the Capabilities-Exchange-Request (Origin-Host and
//! Origin-Realm), as DRAs and HSSs do, optionally pinned to the source addresses they connect
//! from.

use std::fmt;
use std::net::IpAddr;

/// One peer allowed to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its Origin-Host (a DiameterIdentity: an FQDN, compared without regard to case).
    pub origin_host: String,
    /// Its Origin-Realm.
    pub realm: String,
    /// Where it may connect from; `None`: anywhere.
    pub source: Option<Cidr>,
}

/// The peers allowed to connect, in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTable {
    peers: Vec<Peer>,
}

impl PeerTable {
    /// A table of `peers`.
    pub fn new(peers: Vec<Peer>) -> PeerTable {
        PeerTable { peers }
    }

    /// The peers, in order: a peer's index names it in metrics.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// Whether some peer may connect from `ip`: a connection from anywhere else is closed
    /// before a byte of it is read.
    pub fn admits_address(&self, ip: IpAddr) -> bool {
        self.peers
            .iter()
            .any(|peer| peer.source.is_none_or(|cidr| cidr.contains(ip)))
    }

    /// The index of the peer a CER from `ip` with this Origin-Host and Origin-Realm comes from.
    pub fn find(&self, origin_host: &[u8], realm: &[u8], ip: IpAddr) -> Option<usize> {
        self.peers.iter().position(|peer| {
            peer.origin_host
                .as_bytes()
                .eq_ignore_ascii_case(origin_host)
                && peer.realm.as_bytes().eq_ignore_ascii_case(realm)
                && peer.source.is_none_or(|cidr| cidr.contains(ip))
        })
    }
}

/// An address block such as `10.20.0.0/16` or `2001:db8::/32` (a bare address is a /32 or
/// /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address[/prefix]`.
    ///
    /// # Errors
    /// A sentence naming what is wrong: the address, the prefix, or host bits set.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
        if let IpAddr::V6(v6) = network {
            if v6.to_ipv4_mapped().is_some() {
                return Err(format!(
                    "{address} is an IPv4-mapped IPv6 address: write the IPv4 block ({})",
                    v6.to_ipv4_mapped().expect("mapped")
                ));
            }
        }
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix {p:?} is not a number from 0 to {max}"))?,
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != bits(network) {
            return Err(format!(
                "{text} has bits set past its /{prefix} prefix (did you mean the network address?)"
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == bits(self.network)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let host_bits = width - u32::from(self.prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            !0u128 << host_bits
        };
        bits(ip) & mask
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_what_they_say() {
        let net = Cidr::parse("10.20.0.0/16").unwrap();
        assert!(net.contains(ip("10.20.255.1")));
        assert!(net.contains(ip("::ffff:10.20.0.9")));
        assert!(!net.contains(ip("10.21.0.1")));
        assert!(!net.contains(ip("::1")));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
    }

    #[test]
    fn bad_blocks_are_named() {
        for (text, says) in [
            ("10.0.0.1/8", "bits set past"),
            ("10.0.0.0/33", "prefix"),
            ("mme.example", "not an IPv4 or IPv6"),
            ("10.0.0.0/x", "prefix"),
            ("::ffff:10.0.0.0/104", "IPv4-mapped"),
        ] {
            let err = Cidr::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn peers_are_found_by_identity_and_source() {
        let table = PeerTable::new(vec![
            Peer {
                origin_host: "mme1.epc.example".into(),
                realm: "epc.example".into(),
                source: Some(Cidr::parse("10.0.0.0/24").unwrap()),
            },
            Peer {
                origin_host: "dra.epc.example".into(),
                realm: "epc.example".into(),
                source: None,
            },
        ]);
        assert_eq!(
            table.find(b"MME1.epc.example", b"EPC.example", ip("10.0.0.5")),
            Some(0)
        );
        assert_eq!(
            table.find(b"mme1.epc.example", b"epc.example", ip("10.0.1.5")),
            None
        );
        assert_eq!(
            table.find(b"mme1.epc.example", b"other", ip("10.0.0.5")),
            None
        );
        assert_eq!(
            table.find(b"dra.epc.example", b"epc.example", ip("192.0.2.1")),
            Some(1)
        );
        assert!(table.admits_address(ip("192.0.2.1")));
        let pinned = PeerTable::new(vec![table.peers()[0].clone()]);
        assert!(pinned.admits_address(ip("10.0.0.9")));
        assert!(!pinned.admits_address(ip("10.0.1.9")));
        assert!(!PeerTable::default().admits_address(ip("127.0.0.1")));
    }
}
