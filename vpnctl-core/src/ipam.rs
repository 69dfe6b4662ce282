//! Address pools: index arithmetic and the allocation bitmap, no I/O.
//!
//! A node's IPv4 pool has `2^(32-prefix)` addresses, numbered by their offset from the
//! network address. Offset 0 (network), 1 (the node's own gateway address) and the
//! last one (broadcast) are never handed out. The pool is split into chunks of
//! [`CHUNK_BITS`] offsets; the store keeps one bitmap per chunk that has ever been
//! touched and an index of the chunks that still have room, so finding the lowest free
//! address is one B-tree seek plus a scan of at most 512 bytes, whatever the pool size.
//!
//! A peer's IPv6 address uses the same offset inside the node's IPv6 pool, so one
//! allocation serves both families and the IPv6 pool is checked to be at least as
//! large as the IPv4 one.

use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{Error, Result};

/// Offsets per chunk bitmap (512 bytes).
pub const CHUNK_BITS: u32 = 4096;
pub const CHUNK_BYTES: usize = (CHUNK_BITS / 8) as usize;

/// Largest and smallest IPv4 pools accepted (a /8 is 16M addresses, a /30 holds one
/// client).
pub const MIN_V4_PREFIX: u8 = 8;
pub const MAX_V4_PREFIX: u8 = 30;

pub fn validate_pools(v4: Ipv4Net, v6: Option<Ipv6Net>) -> Result<()> {
    if v4.network() != v4.addr() {
        return Err(Error::invalid(
            "ipv4 pool",
            format!("{v4} has host bits set; did you mean {}?", v4.trunc()),
        ));
    }
    if !(MIN_V4_PREFIX..=MAX_V4_PREFIX).contains(&v4.prefix_len()) {
        return Err(Error::invalid(
            "ipv4 pool",
            format!(
                "/{} is outside /{MIN_V4_PREFIX}../{MAX_V4_PREFIX}",
                v4.prefix_len()
            ),
        ));
    }
    if let Some(v6) = v6 {
        if v6.network() != v6.addr() {
            return Err(Error::invalid(
                "ipv6 pool",
                format!("{v6} has host bits set; did you mean {}?", v6.trunc()),
            ));
        }
        if 128 - u32::from(v6.prefix_len()) < 32 - u32::from(v4.prefix_len()) {
            return Err(Error::invalid(
                "ipv6 pool",
                format!("{v6} is smaller than the IPv4 pool {v4}"),
            ));
        }
    }
    Ok(())
}

/// Number of offsets in an IPv4 pool.
pub fn pool_size(v4: Ipv4Net) -> u32 {
    // prefix is 8..=30, so this fits in u32.
    1u32 << (32 - u32::from(v4.prefix_len()))
}

/// Number of offsets a client may take.
pub fn usable(v4: Ipv4Net) -> u32 {
    pool_size(v4) - 3
}

pub fn chunk_count(size: u32) -> u32 {
    size.div_ceil(CHUNK_BITS)
}

pub fn is_reserved(size: u32, offset: u32) -> bool {
    offset <= 1 || offset >= size - 1
}

pub use vpnctl_api::model::{host_v4, host_v6};

/// The offset of `addr` inside `pool`, if it is in it.
pub fn offset_v4(pool: Ipv4Net, addr: Ipv4Addr) -> Option<u32> {
    pool.contains(&addr)
        .then(|| u32::from(addr) - u32::from(pool.network()))
}

/// The lowest free, non-reserved offset in chunk `chunk`, given its bitmap.
pub fn first_free(bits: &[u8; CHUNK_BYTES], chunk: u32, size: u32) -> Option<u32> {
    let base = chunk * CHUNK_BITS;
    for (w, word) in bits.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let mut free = !word;
        while free != 0 {
            let bit = free.trailing_zeros();
            let offset = base + (w as u32) * 64 + bit;
            if offset >= size {
                return None;
            }
            if !is_reserved(size, offset) {
                return Some(offset);
            }
            free &= free - 1;
        }
    }
    None
}

pub fn set(bits: &mut [u8; CHUNK_BYTES], offset: u32, used: bool) {
    let i = (offset % CHUNK_BITS) as usize;
    if used {
        bits[i / 8] |= 1 << (i % 8);
    } else {
        bits[i / 8] &= !(1 << (i % 8));
    }
}

pub fn is_set(bits: &[u8; CHUNK_BYTES], offset: u32) -> bool {
    let i = (offset % CHUNK_BITS) as usize;
    bits[i / 8] & (1 << (i % 8)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_validated() {
        let v4 = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let v6 = |s: &str| s.parse::<Ipv6Net>().unwrap();
        assert!(validate_pools(v4("10.8.0.0/16"), Some(v6("fd00::/64"))).is_ok());
        assert!(validate_pools(v4("10.8.0.1/24"), None).is_err());
        assert!(validate_pools(v4("10.8.0.0/31"), None).is_err());
        assert!(validate_pools(v4("10.0.0.0/7"), None).is_err());
        assert!(validate_pools(v4("10.8.0.0/16"), Some(v6("fd00::/120"))).is_err());
        assert!(validate_pools(v4("10.8.0.0/24"), Some(v6("fd00::/120"))).is_ok());
    }

    #[test]
    fn reserved_offsets_are_skipped() {
        let mut bits = [0u8; CHUNK_BYTES];
        // /24: 256 offsets; 0, 1 and 255 are reserved.
        assert_eq!(first_free(&bits, 0, 256), Some(2));
        for o in 2..255 {
            set(&mut bits, o, true);
        }
        assert_eq!(first_free(&bits, 0, 256), None);
        set(&mut bits, 77, false);
        assert_eq!(first_free(&bits, 0, 256), Some(77));
        assert!(!is_set(&bits, 77));
    }

    #[test]
    fn a_slash_16_spans_chunks() {
        let pool: Ipv4Net = "10.8.0.0/16".parse().unwrap();
        let size = pool_size(pool);
        assert_eq!(chunk_count(size), 16);
        let bits = [0u8; CHUNK_BYTES];
        assert_eq!(first_free(&bits, 3, size), Some(3 * CHUNK_BITS));
        let last = [0u8; CHUNK_BYTES];
        assert!(first_free(&last, 15, size).is_some());
        assert_eq!(
            host_v4(pool, 65534),
            "10.8.255.254".parse::<Ipv4Addr>().unwrap()
        );
        assert_eq!(offset_v4(pool, "10.8.1.0".parse().unwrap()), Some(256));
        assert_eq!(offset_v4(pool, "10.9.0.0".parse().unwrap()), None);
        assert_eq!(
            host_v6("fd00:1::/64".parse().unwrap(), 258),
            "fd00:1::102".parse::<std::net::Ipv6Addr>().unwrap()
        );
    }
}
