//! Network namespaces: move the calling thread into one (privileged tests and benchmarks that
//! run a server in one namespace and a client in another).

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Where `ip netns add NAME` puts the namespace file of `NAME`.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// The namespace file of `name`: `name` itself when it contains a `/`, otherwise
/// [`NETNS_RUN_DIR`]`/name`.
pub fn path_of(name: &str) -> PathBuf {
    if name.contains('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from(NETNS_RUN_DIR).join(name)
    }
}

/// Moves the calling thread (only it) into network namespace `name` (see [`path_of`]).
///
/// Sockets and queues opened afterwards on this thread belong to that namespace and stay in it
/// when handed to other threads; threads spawned from this one start in it. Needs
/// `CAP_SYS_ADMIN` (root).
pub fn enter(name: &str) -> io::Result<()> {
    let path = path_of(name);
    let file = std::fs::File::open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    // SAFETY: `file` is an open descriptor for the duration of the call; setns only changes
    // the network namespace of the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns {}: {e}", path.display())));
    }
    Ok(())
}

/// Runs `f` on a new thread inside network namespace `name` and returns its result (sockets
/// made there stay in the namespace when handed back).
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| enter(name).map(|()| f()))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(path_of("pg1a"), PathBuf::from("/var/run/netns/pg1a"));
        assert_eq!(path_of("/proc/1/ns/net"), PathBuf::from("/proc/1/ns/net"));
    }

    #[test]
    fn missing_namespace_is_an_error_naming_it() {
        let e = enter("peregrine-no-such-ns").unwrap_err();
        assert!(e.to_string().contains("/var/run/netns/peregrine-no-such-ns"), "{e}");
    }
}
