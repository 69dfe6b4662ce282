//! Accounted traffic: a user's usage and quota period, a peer's totals.

use crate::error::Result;
use crate::lifecycle::Traffic;
use crate::model::{PeerId, UserId};

use super::tx::period_of;
use super::{UsageView, Vpnctl};

impl Vpnctl {
    /// A user's traffic in the current period and overall.
    pub fn usage(&self, user: UserId) -> Result<UsageView> {
        let now = self.now();
        self.read(|rx| {
            let u = rx.user(user)?;
            let mut usage = rx.usage(user)?;
            let (start, end) = period_of(&u).bounds(now);
            if usage.period_start != start {
                usage.period_bytes = 0;
            }
            Ok(UsageView {
                total: usage.total,
                period_bytes: usage.period_bytes,
                period_start: start,
                period_end: end,
                quota: u.quota,
                suspended: u.suspended,
            })
        })
    }

    /// A peer's accounted traffic.
    pub fn peer_traffic(&self, peer: PeerId) -> Result<Traffic> {
        self.read(|rx| {
            rx.peer(peer)?;
            let (rx_b, tx_b) = rx.peer_traffic(peer)?;
            Ok(Traffic { rx: rx_b, tx: tx_b })
        })
    }
}
