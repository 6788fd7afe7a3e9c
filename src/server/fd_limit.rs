//! The process's open-file limit, which bounds connections before `max_connections` does:
//! every connection is a descriptor, and when `accept(2)` runs out of them (EMFILE) no slot
//! is ever given back by eviction, since eviction used to run only when slots ran out. So at
//! start the soft limit is raised to the hard one (as nginx's `worker_rlimit_nofile` and Go's
//! runtime do) and `max_connections` capped to what it leaves, and an accept that fails for
//! want of descriptors starts eviction rounds too (see `listener.rs`).

use std::io;

/// Descriptors kept for everything that is not a client connection: the listener, the
/// runtime's epoll and eventfd, log files, files being served, Redis connections.
pub(crate) const RESERVED: u64 = 64;

/// Raises the soft open-file limit to the hard one; the soft limit in force after (`None`:
/// unlimited, or unknown).
fn raise_soft_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    match limit.maximum {
        Some(hard) if hard > soft => {
            let raised = rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => Some(hard),
                Err(e) => {
                    tracing::debug!(error = %e, soft, hard, "could not raise the open-file limit");
                    Some(soft)
                }
            }
        }
        // Unlimited hard limit: raising the soft one to "unlimited" is refused on Linux
        // (it is capped by fs.nr_open), so it stays as it is.
        _ => Some(soft),
    }
}

/// `max_connections` as the open-file limit allows: the limit is raised first, then
/// [`RESERVED`] descriptors are kept back; a configured value over what remains is lowered,
/// with a warning that says what to do.
pub(crate) fn cap_connections(wanted: usize) -> usize {
    let Some(soft) = raise_soft_limit() else {
        return wanted;
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED))
        .unwrap_or(usize::MAX)
        .max(1);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = soft,
            capped_to = room,
            "max_connections is above what the open-file limit allows: capped (raise the hard \
             limit, e.g. `ulimit -Hn` or systemd's LimitNOFILE, to allow more)"
        );
        return room;
    }
    wanted
}

/// Whether an accept failed for want of descriptors (the process's or the system's), which
/// closing idle connections cures.
pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        let emfile = io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        let enfile = io::Error::from_raw_os_error(rustix::io::Errno::NFILE.raw_os_error());
        let other = io::Error::from_raw_os_error(rustix::io::Errno::CONNABORTED.raw_os_error());
        assert!(is_exhaustion(&emfile) && is_exhaustion(&enfile));
        assert!(!is_exhaustion(&other));
    }

    #[test]
    fn the_cap_keeps_what_fits() {
        // The test process's limit is whatever it is; a small value always fits.
        assert_eq!(cap_connections(10), 10);
        let capped = cap_connections(usize::MAX);
        assert!((1..usize::MAX).contains(&capped));
    }
}
