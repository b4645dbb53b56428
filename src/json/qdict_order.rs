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

/// Objects up to this many members are ordered on the stack; larger ones in a vector.
const ON_STACK: usize = 16;

/// Members in the order QEMU iterates a QDict: by bucket, and within a bucket the most
/// recently inserted first. Every request and reply is ordered this way and nearly all have a
/// few members, so those are ordered without allocating.
pub fn qdict_order(d: &Dict) -> QdictOrder<'_> {
    let n = d.len();
    let mut keys = if n <= ON_STACK { SortKeys::Stack([0; ON_STACK]) } else { SortKeys::Heap(vec![0; n]) };
    let keys_of_members = &mut keys.as_mut_slice()[..n];
    if n == 1 {
        // One member has one order: no bucket to compute.
        keys_of_members[0] = sort_key_in_bucket(0, 0);
    } else {
        for (index, slot) in keys_of_members.iter_mut().enumerate() {
            *slot = sort_key_in_bucket(qdict_bucket(d.member(index).0), index);
        }
        keys_of_members.sort_unstable();
    }
    QdictOrder { dict: d, keys, next: 0 }
}

/// One member's place: its bucket in the high half, then the newest (highest index) first.
/// An object has far fewer than 2^32 members (a message has at most 2^21 tokens).
fn sort_key_in_bucket(bucket: u32, index: usize) -> u64 {
    (u64::from(bucket) << 32) | u64::from(u32::MAX - index as u32)
}

fn index_of(sort_key: u64) -> usize {
    (u32::MAX - sort_key as u32) as usize
}

enum SortKeys {
    Stack([u64; ON_STACK]),
    Heap(Vec<u64>),
}

impl SortKeys {
    fn as_slice(&self) -> &[u64] {
        match self {
            SortKeys::Stack(keys) => keys,
            SortKeys::Heap(keys) => keys,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u64] {
        match self {
            SortKeys::Stack(keys) => keys,
            SortKeys::Heap(keys) => keys,
        }
    }
}

/// An object's members in QDict order (see [`qdict_order`]).
pub struct QdictOrder<'a> {
    dict: &'a Dict,
    keys: SortKeys,
    next: usize,
}

impl<'a> Iterator for QdictOrder<'a> {
    type Item = (&'a [u8], &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next == self.dict.len() {
            return None;
        }
        let key = self.keys.as_slice()[self.next];
        self.next += 1;
        Some(self.dict.member(index_of(key)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_by_bucket_and_newest_first_within_one() {
        let d = Dict::new().with("return", Value::Null).with("id", Value::Null).with("error", Value::Null);
        let keys: Vec<&[u8]> = qdict_order(&d).map(|(k, _)| k).collect();
        assert_eq!(keys, [&b"return"[..], b"id", b"error"]);
    }

    #[test]
    fn large_objects_come_in_the_same_order_as_small_ones() {
        // Past the members ordered on the stack: the same rule, bucket then newest first.
        let names: Vec<String> = (0..40).map(|i| format!("m{}", i % 7 * 100 + i)).collect();
        let mut d = Dict::new();
        for n in &names {
            d.insert(n.as_bytes(), Value::Null);
        }
        let got: Vec<&[u8]> = qdict_order(&d).map(|(k, _)| k).collect();
        let mut want: Vec<(u32, usize, &[u8])> =
            names.iter().enumerate().map(|(i, n)| (qdict_bucket(n.as_bytes()), i, n.as_bytes())).collect();
        want.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        assert_eq!(got, want.into_iter().map(|(_, _, k)| k).collect::<Vec<_>>());
        assert!(d.len() > ON_STACK);
    }
}
