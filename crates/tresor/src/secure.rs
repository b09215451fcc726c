//! Process hardening: lock memory so keys never reach swap (unless `disable_mlock`), and turn
//! off core dumps so a crash never writes keys to disk. This is the one audited place that
//! calls into libc; each call is a plain syscall wrapper with no pointers kept.

#![allow(unsafe_code)] // reason: mlockall/setrlimit/prctl have no safe std equivalent

/// Disables core dumps for this process.
pub fn disable_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct we pass by pointer and keeps no reference to it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    if rc != 0 {
        tracing::warn!(
            "could not disable core dumps: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: PR_SET_DUMPABLE takes integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

/// Locks all current and future memory. Errors carry Vault's advice.
///
/// Pages are locked when first touched (`MCL_ONFAULT`, Linux 4.4 and later): a page is locked
/// by the fault that first writes it, so no secret reaches a page that could be swapped, and
/// address space that is reserved but never used (thread stacks, the allocator's arenas) is
/// not brought into memory just to be locked. Kernels without `MCL_ONFAULT` lock everything at
/// once, as before.
pub fn lock_memory() -> Result<(), String> {
    let all = libc::MCL_CURRENT | libc::MCL_FUTURE;
    // SAFETY: mlockall takes flags only.
    let mut rc = unsafe { libc::mlockall(all | libc::MCL_ONFAULT) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        rc = unsafe { libc::mlockall(all) };
    }
    if rc == 0 {
        return Ok(());
    }
    Err(format!(
        "failed to lock memory: {}\n\nThis usually means that the mlock syscall is not available or the process lacks the \
         IPC_LOCK capability (or RLIMIT_MEMLOCK is too low). Tresor uses mlock to keep secrets out of swap. To run \
         anyway, set disable_mlock = true in the configuration (not recommended for production with swap enabled).",
        std::io::Error::last_os_error()
    ))
}
