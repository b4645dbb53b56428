//! The one seccomp rule compiler that front and helper share. Each process keeps its own table
//! of allowed system calls, as data with a reason per entry ([`Allowed`]); this module turns a
//! table into a BPF program with one rule: an entry without argument tests allows the call
//! whatever its arguments, entries with tests allow it when any one of them holds, and a call
//! that is in no entry is refused in the way [`SandboxMode`] says.
//!
//! It lives in the policy crate because both binaries already depend on it and it holds no
//! privileged code: the front must not link the helper's operations.

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the seccomp tables are written for x86_64 and aarch64 only; add the architecture's tables first");

use std::collections::BTreeMap;

pub use seccompiler::BpfProgram;
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};

/// How a filter is applied; the same three modes for front and helper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxMode {
    /// The default: a call outside the table kills the process.
    #[default]
    Enforce,
    /// Debugging only (`--seccomp-log` on the front, `--seccomp=log` on the helper): calls
    /// outside the table are allowed and logged by the kernel (audit records of type 1326
    /// naming the syscall number), so a missing entry is found without a crash.
    Log,
    /// Profiling only (`--no-sandbox`, e.g. under valgrind): no filter at all.
    Off,
}

/// One argument test: `(arg & mask) == value`, on the low 32 bits only when `dword` (for
/// arguments the kernel itself reads as `int`/`unsigned int`, such as an ioctl request or a
/// descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgIs {
    pub index: u8,
    pub dword: bool,
    pub mask: u64,
    pub value: u64,
}

/// Argument `index` equals `value` (all 64 bits).
pub const fn eq(index: u8, value: u64) -> ArgIs {
    ArgIs { index, dword: false, mask: u64::MAX, value }
}

/// The low 32 bits of argument `index` equal `value`.
pub const fn eq32(index: u8, value: u64) -> ArgIs {
    ArgIs { index, dword: true, mask: u32::MAX as u64, value }
}

/// None of `bits` is set in argument `index`.
pub const fn clear(index: u8, bits: u64) -> ArgIs {
    ArgIs { index, dword: false, mask: bits, value: 0 }
}

/// One allowed call: the syscall, the argument tests that must all hold (none: any arguments)
/// and who needs it. Several entries for one syscall allow any one of them. Tables are
/// `'static` data; the lifetime lets a process add an entry whose value is known only at
/// start (a descriptor number).
#[derive(Clone, Copy, Debug)]
pub struct Allowed<'a> {
    pub nr: std::ffi::c_long,
    pub name: &'static str,
    pub args: &'a [ArgIs],
    pub why: &'static str,
}

/// `allow!(SYS_read, "why")` or `allow!(SYS_ioctl, [eq32(1, X)], "why")`: an [`Allowed`] entry
/// naming the syscall by its `libc` constant (the caller has `libc` in scope).
#[macro_export]
macro_rules! allow {
    ($sys:ident, $why:literal) => {
        $crate::seccomp::Allowed { nr: libc::$sys, name: stringify!($sys), args: &[], why: $why }
    };
    ($sys:ident, [$($arg:expr),+ $(,)?], $why:literal) => {
        $crate::seccomp::Allowed { nr: libc::$sys, name: stringify!($sys), args: &[$($arg),+], why: $why }
    };
}

#[derive(Debug)]
pub struct SandboxError(String);

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SandboxError {}

fn target_arch() -> seccompiler::TargetArch {
    #[cfg(target_arch = "x86_64")]
    return seccompiler::TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    return seccompiler::TargetArch::aarch64;
}

fn condition(a: &ArgIs) -> Result<SeccompCondition, SandboxError> {
    let (len, full) =
        if a.dword { (SeccompCmpArgLen::Dword, u32::MAX as u64) } else { (SeccompCmpArgLen::Qword, u64::MAX) };
    let op = if a.mask == full { SeccompCmpOp::Eq } else { SeccompCmpOp::MaskedEq(a.mask) };
    SeccompCondition::new(a.index, len, op, a.value).map_err(|e| SandboxError(format!("seccomp condition: {e}")))
}

/// What the compiler makes of one syscall's entries.
enum Rules {
    /// An unconditional entry: any arguments. A conditional entry seen before or after it
    /// cannot narrow it again.
    Any,
    /// Only arguments that pass one of these rules.
    Only(Vec<SeccompRule>),
}

/// Compiles the entries. In [`SandboxMode::Log`] a call outside them is logged instead of
/// killing; [`SandboxMode::Off`] compiles like [`SandboxMode::Enforce`] (it is [`apply`] that
/// skips the filter).
pub fn compile<'a>(
    entries: impl IntoIterator<Item = &'a Allowed<'a>>,
    mode: SandboxMode,
) -> Result<BpfProgram, SandboxError> {
    let mut by_call: BTreeMap<i64, Rules> = BTreeMap::new();
    for entry in entries {
        let slot = by_call.entry(entry.nr).or_insert_with(|| Rules::Only(Vec::new()));
        if entry.args.is_empty() {
            *slot = Rules::Any;
            continue;
        }
        let conditions = entry.args.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
        let rule = SeccompRule::new(conditions).map_err(|e| SandboxError(format!("seccomp rule: {e}")))?;
        if let Rules::Only(list) = slot {
            list.push(rule);
        }
    }
    // seccompiler's encoding: an empty rule list matches any arguments.
    let rules = by_call
        .into_iter()
        .map(|(nr, rules)| (nr, if let Rules::Only(list) = rules { list } else { Vec::new() }))
        .collect();
    let mismatch = match mode {
        SandboxMode::Log => SeccompAction::Log,
        SandboxMode::Enforce | SandboxMode::Off => SeccompAction::KillProcess,
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, target_arch())
        .map_err(|e| SandboxError(format!("seccomp filter: {e}")))?;
    filter.try_into().map_err(|e: seccompiler::BackendError| SandboxError(format!("seccomp compile: {e}")))
}

/// Applies a compiled program to the calling thread (both processes are single-threaded when
/// they apply it). no_new_privs must already be set, as the kernel requires of a process
/// without CAP_SYS_ADMIN; both demotions set it.
pub fn apply(program: &BpfProgram) -> Result<(), SandboxError> {
    seccompiler::apply_filter(program).map_err(|e| SandboxError(format!("applying the seccomp filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Any two numbers do: the compiler does not look at what they name.
    const READ: i64 = 0;
    const WRITE: i64 = 1;
    const FD_1: &[ArgIs] = &[eq(0, 1)];
    const FD_2: &[ArgIs] = &[eq(0, 2)];
    const FD_3: &[ArgIs] = &[eq(0, 3)];

    fn compiled(entries: &[Allowed<'_>], mode: SandboxMode) -> Vec<(u16, u8, u8, u32)> {
        compile(entries, mode).unwrap().iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    fn entry(nr: i64, args: &[ArgIs]) -> Allowed<'_> {
        Allowed { nr, name: "test", args, why: "a test entry" }
    }

    #[test]
    fn a_later_conditional_entry_does_not_narrow_an_unconditional_one() {
        let wide_then_narrow = [entry(READ, &[]), entry(READ, FD_3)];
        let wide_only = [entry(READ, &[])];
        assert_eq!(compiled(&wide_then_narrow, SandboxMode::Enforce), compiled(&wide_only, SandboxMode::Enforce));
        let narrow_then_wide = [entry(READ, FD_3), entry(READ, &[])];
        assert_eq!(compiled(&narrow_then_wide, SandboxMode::Enforce), compiled(&wide_only, SandboxMode::Enforce));
    }

    #[test]
    fn conditional_entries_add_up() {
        let one = [entry(WRITE, FD_1)];
        let two = [entry(WRITE, FD_1), entry(WRITE, FD_2)];
        assert_ne!(compiled(&one, SandboxMode::Enforce), compiled(&two, SandboxMode::Enforce));
    }

    #[test]
    fn log_mode_compiles_a_different_mismatch_action() {
        let t = [entry(READ, &[])];
        assert_ne!(compiled(&t, SandboxMode::Enforce), compiled(&t, SandboxMode::Log));
        assert_eq!(compiled(&t, SandboxMode::Enforce), compiled(&t, SandboxMode::Off));
    }
}
