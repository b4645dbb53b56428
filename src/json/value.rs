//! The JSON value model of QEMU's QObject: integers keep their signed/unsigned/float kind and
//! strings are byte strings in modified UTF-8 (`\u0000` is stored as C0 80), as QEMU keeps them,
//! so that what the host sent is echoed back exactly.

use std::borrow::Cow;
use std::rc::Rc;

/// A parsed or to-be-written JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A JSON integer that fits `i64`.
    Int(i64),
    /// A JSON integer above `i64::MAX` that fits `u64`.
    UInt(u64),
    /// A JSON number with a fraction or exponent, or an integer out of 64-bit range.
    Float(f64),
    Str(Vec<u8>),
    /// Bytes written as a JSON string of their standard base64 encoding (guest-file-read's
    /// `buf-b64`). Kept raw so the writer encodes straight into the reply: no intermediate
    /// string, and nothing to escape. Never produced by the parser.
    Base64(Vec<u8>),
    List(Vec<Value>),
    Dict(Dict),
    /// An object already written in 7.2's form (guest-info's answer, kept while everything it
    /// says is unchanged): the writer copies the text as it is. Never produced by the parser.
    WrittenObject(Rc<[u8]>),
}

/// A JSON object. Keys keep insertion order here; the writer emits them in QEMU's QDict order.
/// A reply's member names are the program's own constants: they are borrowed, not copied, so
/// building a reply allocates nothing per member name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dict {
    entries: Vec<(Cow<'static, [u8]>, Value)>,
}

impl Dict {
    pub fn new() -> Dict {
        Dict { entries: Vec::new() }
    }

    /// An object with room for `members` members: a reply whose members the code knows up
    /// front is built without growing.
    pub fn with_capacity(members: usize) -> Dict {
        Dict { entries: Vec::with_capacity(members) }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_bytes(key.as_bytes())
    }

    pub fn get_bytes(&self, key: &[u8]) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get_bytes(key).is_some()
    }

    /// Adds a member. The caller guarantees the key is new (the parser rejects duplicates).
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: Value) {
        self.entries.push((Cow::Owned(key.into()), value));
    }

    /// [`Dict::insert`] for a member name the program itself defines: borrowed, not copied.
    pub fn insert_name(&mut self, key: &'static str, value: Value) {
        self.entries.push((Cow::Borrowed(key.as_bytes()), value));
    }

    /// Builder form of [`Dict::insert_name`].
    pub fn with(mut self, key: &'static str, value: Value) -> Dict {
        self.insert_name(key, value);
        self
    }

    /// Members in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The member inserted `index`-th.
    pub(crate) fn member(&self, index: usize) -> (&[u8], &Value) {
        let (k, v) = &self.entries[index];
        (k.as_ref(), v)
    }
}

impl Value {
    pub fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::Str(s.into())
    }

    pub fn empty_dict() -> Value {
        Value::Dict(Dict::new())
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Value {
        Value::Dict(d)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.as_bytes().to_vec())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into_bytes())
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Value {
        Value::List(l)
    }
}
