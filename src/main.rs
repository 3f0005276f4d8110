use std::process::ExitCode;

// Feature maps are allocated and freed once per layer; mimalloc keeps that memory for reuse
// instead of returning it to the OS and faulting it back in on every layer.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    facefind::util::alloc::reuse_freed_memory();
    facefind::cli::main()
}
