//! Who a remote address is, for the bounds that count clients (the public rate limit, the
//! Diameter listener's silent connections): an IPv4 address, or an IPv6 /64 (one subscriber's
//! prefix: a client that owns a /64 holds 2^64 addresses and would otherwise be 2^64
//! clients). An IPv4-mapped IPv6 address is its IPv4 address.

use std::net::IpAddr;

/// The client `peer` belongs to, as a number: the IPv4 address (high 96 bits zero), or the
/// IPv6 /64 with bit 32 set (so that no IPv4 address looks like it), low 32 bits zero.
pub fn client(peer: IpAddr) -> u128 {
    match peer {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => (u128::from(v6) & !((1u128 << 64) - 1)) | (1 << 32),
        },
    }
}
