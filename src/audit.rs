//! The audit trail: one record per request, to syslog (facility authpriv) and optionally to a
//! file (`--audit-file`), in one stable `key=value` layout that `man/qemu-ga-rs.8` (AUDIT)
//! documents and a unit test below holds to.
//!
//! While filesystems are frozen nothing may be written where it could block, so records wait
//! in a bounded ring and are written in order right after thaw; when the ring is full the
//! oldest records are dropped and one record says how many. The agent's exit path releases the
//! ring too (the helper has thawed by then), so a freeze that ends with the agent still gets
//! its records out.
//!
//! Which requests are audited is [`Scope`]: by default every command that is not a pure query
//! (the table's `read_only` flag), every refused request and every request that names no
//! command; `--audit=all` adds the queries, `--audit=off` turns the trail off.

use crate::json::{writer, Dict, Value};
use qga_policy::Command;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Records kept while frozen; beyond it the oldest are dropped and counted.
pub const RING_RECORDS: usize = 1024;

/// Which requests get a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Everything but the allowed, successful pure queries.
    #[default]
    Changes,
    /// Every request.
    All,
    /// No audit trail.
    Off,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Changes => "changes",
            Scope::All => "all",
            Scope::Off => "off",
        }
    }

    pub fn from_name(s: &str) -> Option<Scope> {
        [Scope::Changes, Scope::All, Scope::Off].into_iter().find(|m| m.name() == s)
    }
}

/// What the gate said, and by which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Enabled by the policy.
    Allowed,
    /// Disabled by the policy (file, config keys or `-b`/`-a`).
    RefusedPolicy,
    /// Enabled, but an argument condition of the policy file (`allow COMMAND KEY=VALUE`)
    /// does not allow these arguments; the record's `reason` says which.
    RefusedCondition,
    /// Not allowed while frozen.
    RefusedFrozen,
    /// The request names no known command.
    RefusedUnknown,
    /// The request is not a well-formed command (not an object, bad members, bad JSON).
    RefusedInvalid,
}

impl Decision {
    fn fields(self) -> (&'static str, &'static str) {
        match self {
            Decision::Allowed => ("allowed", "policy"),
            Decision::RefusedPolicy => ("refused", "policy"),
            Decision::RefusedCondition => ("refused", "condition"),
            Decision::RefusedFrozen => ("refused", "frozen"),
            Decision::RefusedUnknown => ("refused", "unknown-command"),
            Decision::RefusedInvalid => ("refused", "invalid-request"),
        }
    }
}

/// One request as the audit trail sees it.
#[derive(Debug)]
pub struct Record {
    pub time: SystemTime,
    pub channel: &'static str,
    /// The command's name; `None` when the request names none (or no known one).
    pub command: Option<&'static str>,
    /// What the request asked for when it names no known command (bounded).
    pub requested: Option<String>,
    pub decision: Decision,
    /// For [`Decision::RefusedCondition`]: the policy's refusal, naming the command and the
    /// argument no condition allows.
    pub reason: Option<String>,
    /// `None` on success, else the QMP error class.
    pub error: Option<&'static str>,
    pub duration: Duration,
    /// The arguments that matter, in a fixed order (see [`audited_arguments`]).
    pub args: Vec<(&'static str, Value)>,
}

/// The arguments recorded for a command: what it touches (path and mode, handle, shutdown
/// mode, time, vCPUs, memory blocks, mount points, trim minimum, exec's program and arguments), never file data, exec input, passwords or key material. An
/// exhaustive match, so a new command is a decision here.
pub fn audited_arguments(command: Command) -> &'static [&'static str] {
    match command {
        Command::FileOpen => &["path", "mode"],
        Command::FileClose | Command::FileFlush => &["handle"],
        Command::FileRead => &["handle", "count"],
        // buf-b64 is file data: only its handle and declared count.
        Command::FileWrite => &["handle", "count"],
        Command::FileSeek => &["handle", "offset", "whence"],
        Command::Shutdown => &["mode"],
        Command::SetTime => &["time"],
        Command::SetVcpus => &["vcpus"],
        Command::SetMemoryBlocks => &["mem-blks"],
        Command::FsfreezeFreezeList => &["mountpoints"],
        Command::Fstrim => &["minimum"],
        // The account, never the password; for keys only how many (see `pick_arguments`).
        Command::SetUserPassword => &["username", "crypted"],
        Command::SshGetAuthorizedKeys => &["username"],
        Command::SshAddAuthorizedKeys => &["username", "keys", "reset"],
        Command::SshRemoveAuthorizedKeys => &["username", "keys"],
        // The program and its arguments; never input-data (data) nor env (may hold secrets).
        Command::Exec => &["path", "arg"],
        Command::ExecStatus => &["pid"],
        Command::SyncDelimited
        | Command::Sync
        | Command::Ping
        | Command::GetTime
        | Command::Info
        | Command::FsfreezeStatus
        | Command::FsfreezeFreeze
        | Command::FsfreezeThaw
        | Command::SuspendDisk
        | Command::SuspendRam
        | Command::SuspendHybrid
        | Command::NetworkGetInterfaces
        | Command::GetVcpus
        | Command::GetDisks
        | Command::GetFsinfo
        | Command::GetMemoryBlocks
        | Command::GetMemoryBlockInfo
        | Command::GetHostName
        | Command::GetUsers
        | Command::GetTimezone
        | Command::GetOsinfo
        | Command::GetDevices
        | Command::GetDiskstats
        | Command::GetCpustats => &[],
    }
}

/// The recorded arguments of a request, taken from its `arguments` object as sent (a value
/// the schema check later refuses is recorded as it was).
pub fn pick_arguments(command: Command, arguments: Option<&Dict>) -> Vec<(&'static str, Value)> {
    let Some(arguments) = arguments else { return Vec::new() };
    audited_arguments(command)
        .iter()
        .filter_map(|&name| arguments.get(name).map(|v| (name, counted(name, v))))
        .collect()
}

/// The arguments whose content is key material: the record keeps how many items they hold.
const COUNTED: &[&str] = &["keys"];

fn counted(name: &str, v: &Value) -> Value {
    match v {
        Value::List(items) if COUNTED.contains(&name) => Value::Int(items.len() as i64),
        other if COUNTED.contains(&name) => Value::str(kind_name(other)),
        other => other.clone(),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "number",
        Value::Str(_) | Value::Base64(_) => "string",
        Value::List(_) => "array",
        Value::Dict(_) | Value::WrittenObject(_) => "object",
    }
}

/// Longest text kept of a host-supplied value; the rest is cut and marked.
const MAX_VALUE_BYTES: usize = 512;

/// Appends `s` as a quoted value: `"` and `\` escaped with a backslash, bytes outside printable
/// ASCII as `\xNN`, cut after [`MAX_VALUE_BYTES`] with `...` inside the quotes.
fn quote(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s.iter().take(MAX_VALUE_BYTES) {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if s.len() > MAX_VALUE_BYTES {
        out.push_str("...");
    }
    out.push('"');
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Str(s) => quote(out, s),
        other => {
            let mut json = Vec::new();
            writer::write(other, &mut json);
            quote(out, &json);
        }
    }
}

/// `SECONDS.MICROSECONDS` since the epoch.
fn stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

impl Record {
    /// The record's text (no newline): `time=… channel=… command=… decision=… rule=…
    /// [reason=…] outcome=… duration_us=…` then `arg.NAME=VALUE` per recorded argument. Fixed tokens are
    /// bare; everything the host chose is a quoted string.
    pub fn format(&self) -> String {
        let (decision, rule) = self.decision.fields();
        let mut out = format!("time={} channel={} command=", stamp(self.time), self.channel);
        match (self.command, &self.requested) {
            (Some(name), _) => quote(&mut out, name.as_bytes()),
            (None, Some(requested)) => quote(&mut out, requested.as_bytes()),
            (None, None) => out.push('-'),
        }
        out.push_str(&format!(" decision={decision} rule={rule}"));
        if let Some(reason) = &self.reason {
            out.push_str(" reason=");
            quote(&mut out, reason.as_bytes());
        }
        out.push_str(" outcome=");
        match self.error {
            None => out.push_str("ok"),
            Some(class) => {
                out.push_str("error class=");
                out.push_str(class);
            }
        }
        out.push_str(&format!(" duration_us={}", self.duration.as_micros()));
        for (name, value) in &self.args {
            out.push_str(" arg.");
            out.push_str(name);
            out.push('=');
            push_value(&mut out, value);
        }
        out
    }
}

/// The record written after thaw when the ring overflowed.
pub fn dropped_record(time: SystemTime, dropped: usize) -> String {
    format!("time={} event=dropped-while-frozen count={dropped}", stamp(time))
}

/// A record of something the agent did on its own (not a request), e.g. a thaw by the
/// freeze time limit.
pub fn event_record(time: SystemTime, event: &str, detail: &str) -> String {
    let mut out = format!("time={} event={event} detail=", stamp(time));
    quote(&mut out, detail.as_bytes());
    out
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct Trail {
    scope: Scope,
    channel: &'static str,
    file: Option<File>,
    syslog: Option<Syslog>,
    frozen: bool,
    ring: VecDeque<String>,
    dropped: usize,
    /// A copy of the held records on a filesystem that cannot be frozen (see [`init`]).
    spill: Option<File>,
    spill_bytes: u64,
}

/// Most bytes the spill file holds; records past it are kept in the ring only.
pub const MAX_SPILL_BYTES: u64 = 4 << 20;

thread_local! {
    static TRAIL: RefCell<Trail> = const { RefCell::new(Trail {
        scope: Scope::Off,
        channel: "-",
        file: None,
        syslog: None,
        frozen: false,
        ring: VecDeque::new(),
        dropped: 0,
        spill: None,
        spill_bytes: 0,
    }) };
}

/// Sets the trail up (before the sandbox: the syslog socket is connected here). `spill`: the
/// spill file in a state directory that cannot be frozen. What it holds are records an agent
/// held while frozen and never wrote (it was killed): they go into the ring, after one record
/// saying so, and are written at the next release (at once when this start is not frozen).
pub fn init(scope: Scope, channel: &'static str, file: Option<File>, spill: Option<File>) {
    let syslog = if scope == Scope::Off {
        None
    } else {
        syslog::unix(syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "qemu-ga-rs-audit".into(),
            pid: std::process::id(),
        })
        .ok()
    };
    TRAIL.with(|t| {
        let mut t = t.borrow_mut();
        t.scope = scope;
        t.channel = channel;
        t.file = file;
        t.syslog = syslog;
        t.ring.clear();
        t.dropped = 0;
        t.spill_bytes = 0;
        t.spill = spill;
        let held = t.spill.as_mut().map(read_spilled).unwrap_or_default();
        if !held.is_empty() {
            t.spill_bytes = held.iter().map(|l| l.len() as u64 + 1).sum();
            let note = event_record(
                SystemTime::now(),
                "held-records-recovered",
                &format!("{} record(s) held while frozen by an agent that stopped before thaw", held.len()),
            );
            t.ring.push_back(note);
            t.ring.extend(held);
        }
    });
}

/// The complete lines of a spill file (its tail, at most [`RING_RECORDS`] of them), leaving
/// the file position at its end so new records follow them.
fn read_spilled(f: &mut File) -> Vec<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let _ = Read::by_ref(f).take(MAX_SPILL_BYTES).read_to_end(&mut bytes);
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let lines: Vec<String> = bytes[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let skip = lines.len().saturating_sub(RING_RECORDS);
    lines.into_iter().skip(skip).collect()
}

pub fn channel() -> &'static str {
    TRAIL.with(|t| t.borrow().channel)
}

/// Whether a request gets a record: never with the trail off; queries only with `all`, and
/// only when they ran (a refused query is audited).
pub fn wanted(command: Option<Command>, decision: Decision) -> bool {
    TRAIL.with(|t| match t.borrow().scope {
        Scope::Off => false,
        Scope::All => true,
        Scope::Changes => decision != Decision::Allowed || !command.is_some_and(|c| c.spec().read_only),
    })
}

/// Whether the trail is on at all (so a request's time is only taken when it can be used).
pub fn enabled() -> bool {
    TRAIL.with(|t| t.borrow().scope != Scope::Off)
}

/// Writes (or, while frozen, keeps) one record's text.
pub fn write(line: String) {
    TRAIL.with(|t| {
        let mut t = t.borrow_mut();
        if t.frozen {
            if t.ring.len() == RING_RECORDS {
                t.ring.pop_front();
                t.dropped += 1;
            }
            t.spill_line(&line);
            t.ring.push_back(line);
        } else {
            t.emit(&line);
        }
    });
}

/// Enters or leaves the frozen state; leaving writes the ring, oldest first, after one record
/// saying how many were dropped (if any).
pub fn set_frozen(frozen: bool) {
    TRAIL.with(|t| {
        let mut t = t.borrow_mut();
        t.frozen = frozen;
        if frozen {
            return;
        }
        let dropped = std::mem::take(&mut t.dropped);
        if dropped > 0 {
            t.emit(&dropped_record(SystemTime::now(), dropped));
        }
        while let Some(line) = t.ring.pop_front() {
            t.emit(&line);
        }
        // Written out: the spill file starts again empty.
        let spilled = t.spill_bytes > 0;
        if let Some(f) = &mut t.spill {
            use std::io::{Seek, SeekFrom};
            if spilled {
                let _ = f.set_len(0);
                let _ = f.seek(SeekFrom::Start(0));
            }
        }
        t.spill_bytes = 0;
    });
}

impl Trail {
    /// Copies a held record to the spill file, while it has room.
    fn spill_line(&mut self, line: &str) {
        let Some(f) = &mut self.spill else { return };
        let len = line.len() as u64 + 1;
        if self.spill_bytes + len > MAX_SPILL_BYTES {
            return;
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        if f.write_all(&bytes).is_ok() {
            self.spill_bytes += len;
        }
    }

    fn emit(&mut self, line: &str) {
        if let Some(f) = &mut self.file {
            let mut bytes = Vec::with_capacity(line.len() + 1);
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            let _ = f.write_all(&bytes);
        }
        if let Some(s) = &mut self.syslog {
            let _ = s.notice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, micros * 1000)
    }

    #[test]
    fn an_allowed_file_open_record_is_the_man_pages_example() {
        let r = Record {
            time: at(1_764_849_600, 123_456),
            channel: "virtio-serial",
            command: Some("guest-file-open"),
            requested: None,
            decision: Decision::Allowed,
            reason: None,
            error: None,
            duration: Duration::from_micros(187),
            args: vec![("path", Value::str("/etc/hostname")), ("mode", Value::str("r"))],
        };
        let man = include_str!("../man/qemu-ga-rs.8");
        let line = r.format();
        assert_eq!(
            line,
            "time=1764849600.123456 channel=virtio-serial command=\"guest-file-open\" decision=allowed rule=policy \
             outcome=ok duration_us=187 arg.path=\"/etc/hostname\" arg.mode=\"r\""
        );
        assert!(man.contains(&man_escape(&line)), "the man page's AUDIT example differs from the format");
    }

    #[test]
    fn a_refused_record_names_the_rule_and_the_error_class_as_the_man_page_shows() {
        let r = Record {
            time: at(1_764_849_601, 5),
            channel: "virtio-serial",
            command: Some("guest-shutdown"),
            requested: None,
            decision: Decision::RefusedFrozen,
            reason: None,
            error: Some("CommandNotFound"),
            duration: Duration::from_micros(9),
            args: vec![("mode", Value::str("halt"))],
        };
        let line = r.format();
        assert_eq!(
            line,
            "time=1764849601.000005 channel=virtio-serial command=\"guest-shutdown\" decision=refused rule=frozen \
             outcome=error class=CommandNotFound duration_us=9 arg.mode=\"halt\""
        );
        let man = include_str!("../man/qemu-ga-rs.8");
        assert!(man.contains(&man_escape(&line)), "the man page's AUDIT example differs from the format");
        assert!(man.contains(&man_escape(&dropped_record(at(1_764_849_660, 0), 17))));
    }

    #[test]
    fn a_request_refused_by_an_argument_condition_says_which_as_the_man_page_shows() {
        let r = Record {
            time: at(1_764_849_602, 40),
            channel: "virtio-serial",
            command: Some("guest-shutdown"),
            requested: None,
            decision: Decision::RefusedCondition,
            reason: Some("the policy does not allow guest-shutdown mode 'halt'".into()),
            error: Some("GenericError"),
            duration: Duration::from_micros(12),
            args: vec![("mode", Value::str("halt"))],
        };
        let line = r.format();
        assert_eq!(
            line,
            "time=1764849602.000040 channel=virtio-serial command=\"guest-shutdown\" decision=refused rule=condition \
             reason=\"the policy does not allow guest-shutdown mode 'halt'\" outcome=error class=GenericError \
             duration_us=12 arg.mode=\"halt\""
        );
        let man = include_str!("../man/qemu-ga-rs.8");
        assert!(man.contains(&man_escape(&line)), "the man page's AUDIT example differs from the format");
    }

    /// The man page writes `\` as `\e` and a leading `-` as `\-`.
    fn man_escape(line: &str) -> String {
        line.replace('\\', "\\e").replace('-', "\\-")
    }

    #[test]
    fn host_text_is_quoted_escaped_and_bounded() {
        let mut out = String::new();
        quote(&mut out, b"a\"b\\c\nd\xff");
        assert_eq!(out, "\"a\\\"b\\\\c\\x0ad\\xff\"");
        let mut long = String::new();
        quote(&mut long, &[b'x'; 600]);
        assert_eq!(long.len(), 1 + MAX_VALUE_BYTES + 3 + 1);
        assert!(long.ends_with("...\""));
    }

    #[test]
    fn an_unknown_command_is_recorded_quoted_and_lists_print_as_json() {
        let r = Record {
            time: at(1, 0),
            channel: "unix-listen",
            command: None,
            requested: Some("guest-exec x".into()),
            decision: Decision::RefusedUnknown,
            reason: None,
            error: Some("CommandNotFound"),
            duration: Duration::ZERO,
            args: vec![],
        };
        assert!(r.format().contains(" command=\"guest-exec x\" decision=refused rule=unknown-command "));
        let mut out = String::new();
        let vcpu = Dict::new().with("logical-id", Value::Int(1)).with("online", Value::Bool(false));
        push_value(&mut out, &Value::List(vec![vcpu.into()]));
        assert_eq!(out, "\"[{\\\"online\\\": false, \\\"logical-id\\\": 1}]\"");
    }

    #[test]
    fn file_data_is_never_an_audited_argument() {
        for c in Command::all() {
            for a in audited_arguments(c) {
                let key_count = COUNTED.contains(a);
                assert!(
                    !a.contains("buf") && !a.contains("password") && (!a.contains("key") || key_count),
                    "{c:?} {a}"
                );
            }
        }
    }

    #[test]
    fn keys_are_recorded_as_how_many_and_passwords_not_at_all() {
        let keys = Value::List(vec![Value::str("ssh-ed25519 AAAA secret"), Value::str("k2")]);
        let args = Dict::new()
            .with("username", Value::str("alice"))
            .with("keys", keys)
            .with("password", Value::str("aHVudGVyMg=="));
        let picked = pick_arguments(Command::SshAddAuthorizedKeys, Some(&args));
        assert_eq!(picked, [("username", Value::str("alice")), ("keys", Value::Int(2))]);
        let picked = pick_arguments(Command::SetUserPassword, Some(&args));
        assert_eq!(picked, [("username", Value::str("alice"))]);
        let wrong = Dict::new().with("keys", Value::str("ssh-ed25519 AAAA secret"));
        assert_eq!(pick_arguments(Command::SshRemoveAuthorizedKeys, Some(&wrong)), [("keys", Value::str("string"))]);
    }

    #[test]
    fn the_ring_keeps_order_drops_the_oldest_and_says_how_many() {
        init(Scope::Changes, "unix-listen", None, None);
        set_frozen(true);
        for i in 0..RING_RECORDS + 3 {
            write(format!("r{i}"));
        }
        TRAIL.with(|t| {
            let t = t.borrow();
            assert_eq!(t.dropped, 3);
            assert_eq!(t.ring.front().map(String::as_str), Some("r3"));
            assert_eq!(t.ring.back().map(String::as_str), Some(format!("r{}", RING_RECORDS + 2).as_str()));
        });
        set_frozen(false);
        TRAIL.with(|t| assert!(t.borrow().ring.is_empty() && t.borrow().dropped == 0));
    }

    #[test]
    fn records_held_while_frozen_survive_in_the_spill_file_and_the_next_start_writes_them_first() {
        let dir = std::env::temp_dir().join(format!("qga-audit-spill-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
                .unwrap()
        };
        init(Scope::Changes, "-", None, Some(open("spill")));
        set_frozen(true);
        write("r1".into());
        write("r2".into());
        // Killed here: the ring is lost, the spill file is not.
        assert_eq!(std::fs::read_to_string(dir.join("spill")).unwrap(), "r1\nr2\n");
        init(Scope::Changes, "-", Some(open("audit")), Some(open("spill")));
        set_frozen(false);
        let audit = std::fs::read_to_string(dir.join("audit")).unwrap();
        let lines: Vec<&str> = audit.lines().collect();
        assert_eq!(lines.len(), 3, "{audit}");
        assert!(lines[0].contains(" event=held-records-recovered detail=\"2 record(s) held while frozen"), "{audit}");
        assert_eq!(&lines[1..], ["r1", "r2"]);
        assert_eq!(std::fs::read_to_string(dir.join("spill")).unwrap(), "", "emptied once written");
        // A partial last line (killed mid-write) is left out.
        std::fs::write(dir.join("spill"), "r3\nr4-cut").unwrap();
        init(Scope::Changes, "-", Some(open("audit2")), Some(open("spill")));
        set_frozen(false);
        let audit = std::fs::read_to_string(dir.join("audit2")).unwrap();
        assert!(audit.ends_with("\nr3\n"), "{audit}");
        init(Scope::Off, "-", None, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn queries_are_audited_only_with_all_or_when_refused() {
        init(Scope::Changes, "-", None, None);
        assert!(!wanted(Some(Command::Ping), Decision::Allowed));
        assert!(wanted(Some(Command::Ping), Decision::RefusedPolicy));
        assert!(wanted(Some(Command::FileOpen), Decision::Allowed));
        assert!(wanted(None, Decision::RefusedInvalid));
        init(Scope::All, "-", None, None);
        assert!(wanted(Some(Command::Ping), Decision::Allowed));
        init(Scope::Off, "-", None, None);
        assert!(!wanted(Some(Command::FileOpen), Decision::Allowed));
    }
}
