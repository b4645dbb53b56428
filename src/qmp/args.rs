//! Checks a request's `arguments` against the command table's argument schema, as QEMU's QMP
//! input visitor does: members in schema order (missing, then wrong type), then anything left
//! over is unexpected. Produces typed arguments, so handlers never see raw JSON.

use super::error::AgentError;
use super::unvisited::first_unexpected;
use crate::json::{Dict, Value};
use qga_policy::{Arg, ArgType};

/// `guest-file-seek`'s whence as given: an integer code (validated by the handler, as 7.2
/// does) or a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    Code(i64),
    Set,
    Cur,
    End,
}

/// One checked `GuestLogicalProcessor`: the protocol's own type, so the checked list goes to
/// the helper as it is.
pub use qga_protocol::VcpuState as Vcpu;

/// One checked `GuestMemoryBlock`, likewise the protocol's own type.
pub use qga_protocol::MemoryBlockState as MemoryBlock;

#[derive(Clone, Debug, PartialEq)]
enum Checked {
    Int(i64),
    Str(Vec<u8>),
    Whence(Whence),
    Vcpus(Vec<Vcpu>),
    Strs(Vec<Vec<u8>>),
    MemoryBlocks(Vec<MemoryBlock>),
    Bool(bool),
}

/// A command's checked arguments, taken one by one by the command's builder
/// (`super::call::Call::build`): each read moves its value out, so a value is read once.
/// In tests every read is recorded with the type it asked for, so one test can hold each
/// builder to its schema row (`call.rs`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    values: Vec<(&'static str, Checked)>,
    #[cfg(test)]
    pub(crate) asked: Vec<(&'static str, ArgType)>,
}

impl Args {
    fn take(&mut self, name: &'static str, _ty: ArgType) -> Option<Checked> {
        #[cfg(test)]
        self.asked.push((name, _ty));
        let at = self.values.iter().position(|(n, _)| *n == name)?;
        Some(self.values.swap_remove(at).1)
    }

    /// What no read took: empty once a builder read its whole row.
    #[cfg(test)]
    pub(crate) fn left(&self) -> Vec<&'static str> {
        self.values.iter().map(|(n, _)| *n).collect()
    }

    /// An optional integer argument.
    pub fn opt_int(&mut self, name: &'static str) -> Option<i64> {
        match self.take(name, ArgType::Int) {
            Some(Checked::Int(i)) => Some(i),
            _ => None,
        }
    }

    /// A required integer argument (the schema check guarantees it).
    pub fn int(&mut self, name: &'static str) -> Result<i64, AgentError> {
        self.opt_int(name).ok_or_else(|| AgentError::MissingParameter(name.into()))
    }

    pub fn opt_str(&mut self, name: &'static str) -> Option<Vec<u8>> {
        match self.take(name, ArgType::Str) {
            Some(Checked::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn str(&mut self, name: &'static str) -> Result<Vec<u8>, AgentError> {
        self.opt_str(name).ok_or_else(|| AgentError::MissingParameter(name.into()))
    }

    pub fn whence(&mut self, name: &'static str) -> Result<Whence, AgentError> {
        match self.take(name, ArgType::Whence) {
            Some(Checked::Whence(w)) => Ok(w),
            _ => Err(AgentError::MissingParameter(name.into())),
        }
    }

    pub fn vcpus(&mut self, name: &'static str) -> Result<Vec<Vcpu>, AgentError> {
        match self.take(name, ArgType::VcpuList) {
            Some(Checked::Vcpus(v)) => Ok(v),
            _ => Err(AgentError::MissingParameter(name.into())),
        }
    }

    /// An optional list of strings.
    pub fn opt_str_list(&mut self, name: &'static str) -> Option<Vec<Vec<u8>>> {
        match self.take(name, ArgType::StrList) {
            Some(Checked::Strs(v)) => Some(v),
            _ => None,
        }
    }

    /// An optional boolean argument.
    pub fn opt_bool(&mut self, name: &'static str) -> Option<bool> {
        match self.take(name, ArgType::Bool) {
            Some(Checked::Bool(b)) => Some(b),
            _ => None,
        }
    }

    pub fn bool(&mut self, name: &'static str) -> Result<bool, AgentError> {
        self.opt_bool(name).ok_or_else(|| AgentError::MissingParameter(name.into()))
    }

    /// A required list of strings.
    pub fn str_list(&mut self, name: &'static str) -> Result<Vec<Vec<u8>>, AgentError> {
        self.opt_str_list(name).ok_or_else(|| AgentError::MissingParameter(name.into()))
    }

    pub fn memory_blocks(&mut self, name: &'static str) -> Result<Vec<MemoryBlock>, AgentError> {
        match self.take(name, ArgType::MemBlockList) {
            Some(Checked::MemoryBlocks(v)) => Ok(v),
            _ => Err(AgentError::MissingParameter(name.into())),
        }
    }
}

/// Checks `arguments` (absent means `{}`) against `schema`.
pub fn check(schema: &[Arg], arguments: Option<&Dict>) -> Result<Args, AgentError> {
    let empty = Dict::new();
    let arguments = arguments.unwrap_or(&empty);
    let mut args = Args::default();
    let mut visited: Vec<&[u8]> = Vec::with_capacity(schema.len());
    for arg in schema {
        match arguments.get(arg.name) {
            None if arg.optional => {}
            None => return Err(AgentError::MissingParameter(arg.name.into())),
            Some(v) => {
                args.values.push((arg.name, check_one(arg, v)?));
                visited.push(arg.name.as_bytes());
            }
        }
    }
    if let Some(key) = first_unexpected(arguments, &visited) {
        return Err(AgentError::UnexpectedParameter(key.to_vec()));
    }
    Ok(args)
}

fn wrong_type(path: &[u8], expected: &'static str) -> AgentError {
    AgentError::InvalidParameterType { path: path.to_vec(), expected }
}

fn int_at(path: &[u8], v: &Value) -> Result<i64, AgentError> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(wrong_type(path, "integer")),
    }
}

fn check_one(arg: &Arg, v: &Value) -> Result<Checked, AgentError> {
    let name = arg.name.as_bytes();
    match arg.ty {
        ArgType::Int => int_at(name, v).map(Checked::Int),
        ArgType::Str => match v {
            Value::Str(s) => Ok(Checked::Str(s.clone())),
            _ => Err(wrong_type(name, "string")),
        },
        ArgType::Whence => match v {
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => {
                int_at(name, v).map(|i| Checked::Whence(Whence::Code(i)))
            }
            Value::Str(s) => match s.as_slice() {
                b"set" => Ok(Checked::Whence(Whence::Set)),
                b"cur" => Ok(Checked::Whence(Whence::Cur)),
                b"end" => Ok(Checked::Whence(Whence::End)),
                _ => Err(AgentError::InvalidEnumValue { name: arg.name, value: s.clone() }),
            },
            _ => Err(wrong_type(name, "GuestFileWhence")),
        },
        ArgType::VcpuList => {
            let Value::List(items) = v else { return Err(wrong_type(name, "array")) };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| vcpu(arg.name, i, item))
                .collect::<Result<_, _>>()
                .map(Checked::Vcpus)
        }
        ArgType::StrList => {
            let Value::List(items) = v else { return Err(wrong_type(name, "array")) };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(wrong_type(format!("{}[{i}]", arg.name).as_bytes(), "string")),
                })
                .collect::<Result<_, _>>()
                .map(Checked::Strs)
        }
        ArgType::Bool => match v {
            Value::Bool(b) => Ok(Checked::Bool(*b)),
            _ => Err(wrong_type(name, "boolean")),
        },
        ArgType::MemBlockList => {
            let Value::List(items) = v else { return Err(wrong_type(name, "array")) };
            items
                .iter()
                .enumerate()
                .map(|(i, item)| memory_block(arg.name, i, item))
                .collect::<Result<_, _>>()
                .map(Checked::MemoryBlocks)
        }
    }
}

/// A `uint64` as QEMU's input visitor takes it: any integer, a negative one wrapping around
/// (its "backward compatibility"), nothing else; the error is a value error, not a type error.
fn uint64_at(path: &[u8], v: &Value) -> Result<u64, AgentError> {
    match v {
        Value::Int(i) => Ok(*i as u64),
        Value::UInt(u) => Ok(*u),
        _ => Err(AgentError::InvalidParameterValue { path: path.to_vec(), expected: "uint64" }),
    }
}

/// One `GuestMemoryBlock`: phys-index (uint64), online (bool), optional can-offline.
fn memory_block(list: &str, index: usize, v: &Value) -> Result<MemoryBlock, AgentError> {
    let (phys_index, online) = id_and_online(list, index, v, "phys-index", uint64_at)?;
    Ok(MemoryBlock { phys_index, online })
}

/// One `GuestLogicalProcessor`: logical-id (int), online (bool), optional can-offline.
fn vcpu(list: &str, index: usize, v: &Value) -> Result<Vcpu, AgentError> {
    let (logical_id, online) = id_and_online(list, index, v, "logical-id", int_at)?;
    Ok(Vcpu { logical_id, online })
}

/// The shape both list elements share: `id` (checked by `id_of`), online (bool), optional
/// can-offline (bool, accepted and ignored as 7.2 does), in that order, then anything else is
/// unexpected.
fn id_and_online<T>(
    list: &str,
    index: usize,
    v: &Value,
    id: &'static str,
    id_of: fn(&[u8], &Value) -> Result<T, AgentError>,
) -> Result<(T, bool), AgentError> {
    let at = |member: &str| format!("{list}[{index}]{}{member}", if member.is_empty() { "" } else { "." }).into_bytes();
    let Value::Dict(d) = v else { return Err(wrong_type(&at(""), "object")) };
    let id_value = match d.get(id) {
        None => return Err(AgentError::MissingParameter(at(id))),
        Some(v) => id_of(&at(id), v)?,
    };
    let bool_at = |member: &str, v: &Value| match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong_type(&at(member), "boolean")),
    };
    let online = match d.get("online") {
        None => return Err(AgentError::MissingParameter(at("online"))),
        Some(v) => bool_at("online", v)?,
    };
    let members: [&[u8]; 3] = [id.as_bytes(), b"online", b"can-offline"];
    let visited = match d.get("can-offline") {
        Some(v) => {
            bool_at("can-offline", v)?;
            &members[..]
        }
        None => &members[..2],
    };
    if let Some(key) = first_unexpected(d, visited) {
        let mut path = at("");
        path.push(b'.');
        path.extend_from_slice(key);
        return Err(AgentError::UnexpectedParameter(path));
    }
    Ok((id_value, online))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qga_policy::Command;

    fn dict(pairs: &[(&str, Value)]) -> Dict {
        let mut d = Dict::new();
        for (k, v) in pairs {
            d.insert(k.as_bytes(), v.clone());
        }
        d
    }

    fn desc(e: AgentError) -> String {
        String::from_utf8(e.desc()).unwrap_or_default()
    }

    #[test]
    fn a_missing_required_argument_is_named() {
        let e = check(Command::Sync.spec().args, None).unwrap_err();
        assert_eq!(desc(e), "Parameter 'id' is missing");
    }

    #[test]
    fn a_float_or_huge_integer_is_the_wrong_type() {
        for v in [Value::Float(1.0), Value::UInt(1 << 63), Value::Bool(true), Value::Null, Value::str("1")] {
            let e = check(Command::Sync.spec().args, Some(&dict(&[("id", v)]))).unwrap_err();
            assert_eq!(desc(e), "Invalid parameter type for 'id', expected: integer");
        }
    }

    #[test]
    fn an_unknown_argument_is_unexpected_after_the_known_ones_pass() {
        let e = check(Command::Ping.spec().args, Some(&dict(&[("x", Value::Int(1))]))).unwrap_err();
        assert_eq!(desc(e), "Parameter 'x' is unexpected");
    }

    #[test]
    fn whence_takes_an_integer_or_a_name() {
        let spec = Command::FileSeek.spec().args;
        let base = [("handle", Value::Int(1000)), ("offset", Value::Int(0))];
        let with = |w: Value| {
            let mut p = base.to_vec();
            p.push(("whence", w));
            check(spec, Some(&dict(&p)))
        };
        assert_eq!(with(Value::Int(7)).unwrap().whence("whence").unwrap(), Whence::Code(7));
        assert_eq!(with(Value::str("end")).unwrap().whence("whence").unwrap(), Whence::End);
        assert_eq!(desc(with(Value::str("x")).unwrap_err()), "Parameter 'whence' does not accept value 'x'");
        assert_eq!(
            desc(with(Value::Bool(true)).unwrap_err()),
            "Invalid parameter type for 'whence', expected: GuestFileWhence"
        );
    }

    #[test]
    fn vcpu_list_errors_carry_the_element_path() {
        let spec = Command::SetVcpus.spec().args;
        let run = |v: Value| desc(check(spec, Some(&dict(&[("vcpus", v)]))).unwrap_err());
        assert_eq!(run(Value::Int(1)), "Invalid parameter type for 'vcpus', expected: array");
        assert_eq!(run(Value::List(vec![Value::Int(1)])), "Invalid parameter type for 'vcpus[0]', expected: object");
        let missing = Value::Dict(dict(&[("logical-id", Value::Int(1))]));
        assert_eq!(run(Value::List(vec![missing])), "Parameter 'vcpus[0].online' is missing");
        let extra =
            Value::Dict(dict(&[("logical-id", Value::Int(1)), ("online", Value::Bool(true)), ("x", Value::Null)]));
        assert_eq!(run(Value::List(vec![extra])), "Parameter 'vcpus[0].x' is unexpected");
    }

    #[test]
    fn mount_point_list_elements_must_be_strings() {
        let spec = Command::FsfreezeFreezeList.spec().args;
        let run = |v: Value| check(spec, Some(&dict(&[("mountpoints", v)])));
        assert_eq!(
            desc(run(Value::str("/")).unwrap_err()),
            "Invalid parameter type for 'mountpoints', expected: array"
        );
        let e = run(Value::List(vec![Value::str("/"), Value::Int(1)])).unwrap_err();
        assert_eq!(desc(e), "Invalid parameter type for 'mountpoints[1]', expected: string");
        let mut ok = run(Value::List(vec![Value::str("/"), Value::str("/boot")])).unwrap();
        assert_eq!(ok.opt_str_list("mountpoints"), Some(vec![b"/".to_vec(), b"/boot".to_vec()]));
        assert_eq!(check(spec, None).unwrap().opt_str_list("mountpoints"), None);
    }

    #[test]
    fn booleans_take_only_true_and_false() {
        let spec = Command::SshAddAuthorizedKeys.spec().args;
        let keys = ("keys", Value::List(vec![Value::str("k")]));
        let run =
            |reset: Value| check(spec, Some(&dict(&[("username", Value::str("u")), keys.clone(), ("reset", reset)])));
        for bad in [Value::Int(1), Value::str("true"), Value::Null] {
            assert_eq!(desc(run(bad).unwrap_err()), "Invalid parameter type for 'reset', expected: boolean");
        }
        assert_eq!(run(Value::Bool(true)).unwrap().opt_bool("reset"), Some(true));
        let mut without = check(spec, Some(&dict(&[("username", Value::str("u")), keys.clone()]))).unwrap();
        assert_eq!(without.opt_bool("reset"), None);
        assert_eq!(without.str_list("keys").unwrap(), [b"k".to_vec()]);
    }

    #[test]
    fn memory_block_errors_carry_the_element_path_and_phys_index_is_a_uint64() {
        let spec = Command::SetMemoryBlocks.spec().args;
        let run = |v: Value| check(spec, Some(&dict(&[("mem-blks", v)])));
        let block = |pairs: &[(&str, Value)]| Value::List(vec![Value::Dict(dict(pairs))]);
        assert_eq!(desc(run(Value::Int(1)).unwrap_err()), "Invalid parameter type for 'mem-blks', expected: array");
        let e = run(Value::List(vec![Value::Null])).unwrap_err();
        assert_eq!(desc(e), "Invalid parameter type for 'mem-blks[0]', expected: object");
        let e = run(block(&[("phys-index", Value::Int(5))])).unwrap_err();
        assert_eq!(desc(e), "Parameter 'mem-blks[0].online' is missing");
        let e = run(block(&[("online", Value::Bool(true))])).unwrap_err();
        assert_eq!(desc(e), "Parameter 'mem-blks[0].phys-index' is missing");
        for bad in [Value::Float(1.0), Value::str("1"), Value::Bool(true)] {
            let e = run(block(&[("phys-index", bad), ("online", Value::Bool(true))])).unwrap_err();
            assert_eq!(desc(e), "Parameter 'mem-blks[0].phys-index' expects uint64");
        }
        let e =
            run(block(&[("phys-index", Value::Int(1)), ("online", Value::Bool(true)), ("can-offline", Value::Int(1))]))
                .unwrap_err();
        assert_eq!(desc(e), "Invalid parameter type for 'mem-blks[0].can-offline', expected: boolean");
        let e = run(block(&[("phys-index", Value::Int(1)), ("online", Value::Bool(true)), ("x", Value::Null)]))
            .unwrap_err();
        assert_eq!(desc(e), "Parameter 'mem-blks[0].x' is unexpected");
        let mut ok = run(Value::List(vec![
            Value::Dict(dict(&[("phys-index", Value::Int(-1)), ("online", Value::Bool(false))])),
            Value::Dict(dict(&[("phys-index", Value::UInt(u64::MAX - 1)), ("online", Value::Bool(true))])),
        ]))
        .unwrap();
        assert_eq!(
            ok.memory_blocks("mem-blks").unwrap(),
            [
                MemoryBlock { phys_index: u64::MAX, online: false },
                MemoryBlock { phys_index: u64::MAX - 1, online: true }
            ]
        );
    }
}
