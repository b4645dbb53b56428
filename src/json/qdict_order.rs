//! QEMU 7.2's QDict iteration order, the one definition of it: the order in which 7.2 writes
//! an object's members and in which it checks a request's members (so the first bad member it
//! names is the one met first in this order). A QDict is a fixed table of 512 buckets of
//! `tdb_hash`, each a list with the newest member first.

use super::value::{Dict, Value};

/// QEMU's QDict hash (`tdb_hash`) of a key, as a bucket index.
fn qdict_bucket(key: &[u8]) -> u32 {
    const BUCKETS: u32 = 512;
    // A C string ends at its first NUL; keys never hold one (NUL is stored as C0 80).
    let mut value = 0x238F_13AFu32.wrapping_mul(key.len() as u32);
    for (i, &b) in key.iter().enumerate() {
        value = value.wrapping_add((b as u32) << ((i * 5) % 24));
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) % BUCKETS
}

/// Members in the order QEMU iterates a QDict: by bucket, and within a bucket the most
/// recently inserted first.
pub fn qdict_order(d: &Dict) -> Vec<(&[u8], &Value)> {
    let mut entries: Vec<(u32, usize, &[u8], &Value)> =
        d.iter().enumerate().map(|(i, (k, v))| (qdict_bucket(k), i, k, v)).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    entries.into_iter().map(|(_, _, k, v)| (k, v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_by_bucket_and_newest_first_within_one() {
        let d = Dict::new().with("return", Value::Null).with("id", Value::Null).with("error", Value::Null);
        let keys: Vec<&[u8]> = qdict_order(&d).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"return"[..], b"id", b"error"]);
    }
}
