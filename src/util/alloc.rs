//! Settings of mimalloc, the global allocator of the binary and the benches: how long freed
//! memory is kept for reuse before it goes back to the system.
//!
//! The networks allocate and free feature maps of megabytes per layer. With mimalloc's default
//! (freed pages returned to the system after 10 ms) each comes back as fresh pages the kernel
//! must zero: 40 vs 53 LFW images/s in `facefind verify` (this machine, same run).

/// mimalloc.h (v2 and v3): `mi_option_purge_delay` is option 15 of `mi_option_t`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn set_purge_delay(ms: std::os::raw::c_long) {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table; it takes any
    // option id and value, at any time, from any thread. Without mimalloc as the global
    // allocator it changes nothing.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

/// Freed memory goes back to the system after a second unused, not 10 ms: memory is reused
/// while photos are being processed and returned soon after (the app's idle footprint).
pub fn reuse_freed_memory() {
    set_purge_delay(1000);
}

/// Freed memory is never returned. A training step frees and allocates the same large
/// activations and gradients every step and its memory use is flat from step to step.
pub fn keep_freed_memory() {
    set_purge_delay(-1);
}
