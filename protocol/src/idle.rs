//! What a process gives back once it has started: the page mappings of code that ran only
//! then, and the allocator's free memory.
//!
//! Both binaries are static, so each process maps the whole program, and every page of it that
//! ran stays mapped (with the kernel's fault-around, the 64 KiB around each first call): after
//! start-up a process's resident set is mostly code it will not run again (option and policy
//! parsing, the sandbox set-up, the seccomp compiler). Unmapping the program's read-only pages
//! (`MADV_DONTNEED`) takes them out of the process, not out of the page cache: what the process
//! runs afterwards is mapped again by its next page fault, from the page cache, at the cost of
//! a minor fault. Only pages no process ever writes are released: from the ELF header to the
//! end of the code (`etext`), that is the headers, read-only data and code. Relocated data
//! (RELRO), data, heap and stack lie beyond it, so nothing the process computed is touched.

use nix::libc;

extern "C" {
    /// The first byte of the program's image (its ELF header), defined by the linker.
    static __ehdr_start: u8;
    /// The end of the program's code, defined by the linker.
    static etext: u8;
}

/// Releases the start-up code's page mappings and the allocator's free memory. Calls only
/// `madvise(MADV_DONTNEED)` and what `malloc_trim` calls (`brk`, `madvise(MADV_DONTNEED)`), so
/// it may run under the front's and the helper's filters.
pub fn release_startup_pages() {
    // SAFETY: malloc_trim only returns free memory of the allocator to the kernel; nothing
    // allocated moves.
    unsafe { libc::malloc_trim(0) };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as usize;
    // Only the addresses of the two linker-defined symbols are taken; they are never read.
    let (start, end) = (&raw const __ehdr_start as usize, &raw const etext as usize);
    // Whole pages inside the range only: the last page of the code may share its frame with
    // what follows it in the file, but never its mapping with writable data (segments are
    // mapped page by page); rounding inwards keeps to the read-only mappings in any layout.
    let start = start.next_multiple_of(page);
    let end = end - end % page;
    if end > start {
        // SAFETY: the range holds only private read-only file mappings of the program that
        // were never written (no process writes its code or read-only data); dropping their
        // pages loses nothing, and the next access maps the file's page again.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}
