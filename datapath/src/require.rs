//! Tests that need root, a kernel feature or a system tool: they skip loudly where it is missing,
//! and fail instead when `PEREGRINE_REQUIRE_ALL=1` (CI sets it), so a suite that silently lost
//! root or a package cannot stay green.
//!
//! Every such test checks through [`require!`](crate::require!) or [`unavailable`]:
//!
//! ```
//! # fn gso() -> bool { true }
//! fn test_needing_gso() {
//!     peregrine_datapath::require!(gso(), "the kernel lacks UDP GSO");
//!     // ... the test proper
//! }
//! ```

use std::fmt::Display;
use std::process::Command;

/// The environment variable that turns every skip into a failure when set to `1`.
pub const REQUIRE_ALL: &str = "PEREGRINE_REQUIRE_ALL";

/// Whether `PEREGRINE_REQUIRE_ALL=1`: tests must run, never skip.
pub fn require_all() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| v == "1")
}

/// The test on this thread cannot run because of `why`: panics (failing the test) when
/// [`require_all`], and otherwise prints `SKIP <test>: <why>` so the caller can return.
#[track_caller]
pub fn unavailable(why: impl Display) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    assert!(!require_all(), "{test} cannot run: {why} ({REQUIRE_ALL}=1: tests must not skip)");
    eprintln!("SKIP {test}: {why}");
}

/// Returns from the calling test (with `Default::default()`) after [`unavailable`] when the
/// condition is false; the reason is a `format!` string.
#[macro_export]
macro_rules! require {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            $crate::require::unavailable(format_args!($($why)+));
            return Default::default();
        }
    };
}

/// Whether this process runs as root (effective user 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What the AF_XDP tests on a namespace pair (`scripts/netns.sh`) lack on this machine: root,
/// AF_XDP sockets, `ip`, `ethtool` (veth checksum offload must be off), and `nft` when `loss`
/// (the loss rules); `None` when they can run.
pub fn xdp_netns_missing(loss: bool) -> Option<String> {
    if !is_root() {
        Some("needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW, CAP_SYS_ADMIN)".to_string())
    } else if let Err(e) = crate::xdp::probe() {
        Some(format!("AF_XDP sockets unavailable: {e}"))
    } else if !have("ip") {
        Some("ip (iproute2) not installed".to_string())
    } else if !have("ethtool") {
        Some("ethtool not installed (needed to turn off veth checksum offload)".to_string())
    } else if loss && !have("nft") {
        Some("nft (nftables) not installed (needed for the loss rules)".to_string())
    } else {
        None
    }
}

/// Whether the AF_XDP namespace tests can run ([`xdp_netns_missing`]); [`unavailable`] when not.
pub fn xdp_netns(loss: bool) -> bool {
    match xdp_netns_missing(loss) {
        Some(why) => {
            unavailable(why);
            false
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_returns_the_default_when_missing() {
        fn needs(x: bool) -> Option<u8> {
            crate::require!(x, "x is {}", x);
            Some(1)
        }
        assert_eq!(needs(true), Some(1));
        if !require_all() {
            assert_eq!(needs(false), None);
        } else {
            assert!(std::panic::catch_unwind(|| needs(false)).is_err(), "fails under REQUIRE_ALL");
        }
        assert!(have("sh") && !have("no-such-tool-peregrine"));
    }
}
