//! Ctrl-C and SIGTERM during `perf`: the first one ends the run early and the results so far
//! are printed (and the report written), as iperf3 does; a second one exits at once (130).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set by the first SIGINT or SIGTERM.
#[derive(Clone, Debug)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether the run was interrupted.
    pub fn interrupted(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Installs the handlers.
pub fn install() -> Result<Stop, String> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it runs first: exits only when the flag is already set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .map_err(|e| format!("installing a signal handler: {e}"))?;
    }
    Ok(Stop(flag))
}
