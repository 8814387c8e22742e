//! Who reads the checks' reasons. Reasons carry
//! connection strings and internal host names; the probe port listens on
//! every interface. As kube-apiserver does, an answer to a peer outside
//! loopback says `reason withheld` (the kubelet reads only the status
//! code), while `kubectl port-forward` and `kubectl exec … curl`, which
//! arrive on loopback, still see them; `LIFECYCLE_REASONS=show` shows them
//! to everyone. The log always has them ([`TransitionLog`]).
//!
//! [`TransitionLog`]: crate::checks::TransitionLog

use std::net::{IpAddr, SocketAddr};

use crate::config::ReasonsPolicy;

/// The peer of a probe's connection: the server puts it in each request's
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// What an answer says in place of every reason it withholds.
pub(crate) const REASON_WITHHELD: &str = "reason withheld";

/// What an answer says in place of every detail value it withholds.
pub(crate) const VALUE_WITHHELD: &str = "withheld";

/// Whether an answer shows the checks' reasons and detail values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reasons {
    Shown,
    Withheld,
}

impl Reasons {
    /// What `policy` lets `peer` read. A peer that is not known (no
    /// [`Peer`] in the request) reads nothing.
    pub(crate) fn for_peer(policy: ReasonsPolicy, peer: Option<Peer>) -> Reasons {
        match (policy, peer) {
            (ReasonsPolicy::Show, _) => Reasons::Shown,
            (ReasonsPolicy::Loopback, Some(Peer(addr))) if is_loopback(addr.ip()) => Reasons::Shown,
            (ReasonsPolicy::Loopback, _) => Reasons::Withheld,
        }
    }
}

/// `127.0.0.0/8`, `::1`, and `::ffff:127.0.0.0/104` (an IPv4 loopback peer
/// of a socket bound to `[::]`). Not the deprecated IPv4-compatible
/// `::127.0.0.1`, nor `::` or `0.0.0.0`.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_is_127_0_0_0_8_and_colon_colon_1_and_their_mapped_forms() {
        for loopback in [
            "127.0.0.1",
            "127.0.0.0",
            "127.255.255.255",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:127.255.255.254",
        ] {
            assert!(is_loopback(ip(loopback)), "{loopback}");
        }
        for outside in [
            "10.0.0.1",
            "192.0.2.2",
            "128.0.0.1",
            "126.255.255.255",
            "0.0.0.0",
            "169.254.1.1",
            "::",
            "::2",
            "fe80::1",
            "fd00::2",
            "::ffff:10.0.0.1",
            "::ffff:128.0.0.1",
            // IPv4-compatible (deprecated), not mapped: not loopback.
            "::127.0.0.1",
            "64:ff9b::127.0.0.1",
        ] {
            assert!(!is_loopback(ip(outside)), "{outside}");
        }
    }

    #[test]
    fn the_policy_and_the_peer_decide_what_an_answer_shows() {
        let peer = |text: &str| Some(Peer(SocketAddr::new(ip(text), 40000)));
        let loopback = ReasonsPolicy::Loopback;
        assert_eq!(
            Reasons::for_peer(loopback, peer("127.0.0.1")),
            Reasons::Shown
        );
        assert_eq!(
            Reasons::for_peer(loopback, peer("::ffff:127.0.0.1")),
            Reasons::Shown
        );
        assert_eq!(
            Reasons::for_peer(loopback, peer("10.1.2.3")),
            Reasons::Withheld
        );
        assert_eq!(Reasons::for_peer(loopback, None), Reasons::Withheld);
        let show = ReasonsPolicy::Show;
        assert_eq!(Reasons::for_peer(show, peer("10.1.2.3")), Reasons::Shown);
        assert_eq!(Reasons::for_peer(show, None), Reasons::Shown);
    }
}
