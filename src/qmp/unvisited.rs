//! Which unexpected member 7.2 names. Its input visitor puts an object's keys (in QDict order)
//! into a GLib hash table, removes each member as the schema visits it, and reports the first
//! key left in the table's slot order. That order depends on the table's size, which grows and
//! shrinks with the member count, so it is not the QDict order: with many members 7.2 names a
//! different one. This module replays GLib 2.74's table (as Debian 12's qemu-ga links it)
//! for the keys alone; it runs only on the error path.

use crate::json::{qdict_order, Dict};

/// The member 7.2 reports as unexpected in `members`, after the schema visited the present
/// members `visited` in this order; `None` when every member was visited.
pub fn first_unexpected<'a>(members: &'a Dict, visited: &[&[u8]]) -> Option<&'a [u8]> {
    // The visited names are present members and keys are unique: equal counts mean nothing
    // is left over, the common case, answered without building the table.
    if members.len() == visited.len() {
        return None;
    }
    let keys: Vec<&[u8]> = qdict_order(members).map(|(k, _)| k).collect();
    let mut table = HashTable::new();
    for (index, key) in keys.iter().enumerate() {
        table.insert(&keys, index, key);
    }
    for key in visited {
        table.remove(&keys, key);
    }
    table.first().map(|index| keys[index])
}

/// `g_str_hash`: djb2 over the C string's signed chars.
fn str_hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &b| h.wrapping_mul(33).wrapping_add(b as i8 as i32 as u32))
}

const UNUSED: u32 = 0;
const TOMBSTONE: u32 = 1;
const MIN_SHIFT: u32 = 3;

/// For each table size 1 << shift, the largest prime below it.
const PRIME_MOD: [u32; 32] = [
    1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071, 262139, 524287,
    1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689, 268435399, 536870909, 1073741789,
    2147483647,
];

fn is_real(hash: u32) -> bool {
    hash >= 2
}

/// GLib's open-addressing table of keys (indices into the caller's key list): a hash per
/// slot (0 unused, 1 tombstone), quadratic probing from `(hash * 11) % mod`.
struct HashTable {
    hashes: Vec<u32>,
    slots: Vec<usize>,
    modulus: u32,
    mask: u32,
    nodes: usize,
    occupied: usize,
}

impl HashTable {
    fn new() -> HashTable {
        let mut t = HashTable { hashes: Vec::new(), slots: Vec::new(), modulus: 1, mask: 0, nodes: 0, occupied: 0 };
        t.set_shift(MIN_SHIFT);
        t.hashes.resize(t.size(), UNUSED);
        t.slots.resize(t.size(), 0);
        t
    }

    fn size(&self) -> usize {
        self.mask as usize + 1
    }

    fn set_shift(&mut self, shift: u32) {
        self.modulus = PRIME_MOD[shift as usize];
        self.mask = (1u32 << shift) - 1;
    }

    /// `g_hash_table_set_shift_from_size`: the bit length of `size`, at least 3.
    fn set_shift_from_size(&mut self, size: u32) {
        self.set_shift((u32::BITS - size.leading_zeros()).max(MIN_SHIFT));
    }

    fn home(&self, hash: u32) -> u32 {
        hash.wrapping_mul(11) % self.modulus
    }

    fn hash_of(key: &[u8]) -> u32 {
        str_hash(key).max(2)
    }

    /// `g_hash_table_lookup_node`: the key's slot, or where it would go (the first tombstone
    /// passed, else the empty slot that ended the probe).
    fn lookup(&self, keys: &[&[u8]], key: &[u8]) -> usize {
        let hash = Self::hash_of(key);
        let mut index = self.home(hash);
        let mut step = 0u32;
        let mut first_tombstone = None;
        loop {
            let slot = index as usize;
            match self.hashes[slot] {
                UNUSED => return first_tombstone.unwrap_or(slot),
                h if h == hash && keys[self.slots[slot]] == key => return slot,
                TOMBSTONE if first_tombstone.is_none() => first_tombstone = Some(slot),
                _ => {}
            }
            step += 1;
            index = index.wrapping_add(step) & self.mask;
        }
    }

    fn insert(&mut self, keys: &[&[u8]], index: usize, key: &[u8]) {
        let slot = self.lookup(keys, key);
        let old = self.hashes[slot];
        if is_real(old) {
            return;
        }
        self.hashes[slot] = Self::hash_of(key);
        self.slots[slot] = index;
        self.nodes += 1;
        if old == UNUSED {
            self.occupied += 1;
            self.maybe_resize();
        }
    }

    fn remove(&mut self, keys: &[&[u8]], key: &[u8]) {
        let slot = self.lookup(keys, key);
        if !is_real(self.hashes[slot]) {
            return;
        }
        self.hashes[slot] = TOMBSTONE;
        self.nodes -= 1;
        self.maybe_resize();
    }

    /// The first key in slot order: what `g_hash_table_iter_next` returns first.
    fn first(&self) -> Option<usize> {
        self.hashes.iter().position(|&h| is_real(h)).map(|slot| self.slots[slot])
    }

    fn maybe_resize(&mut self) {
        let size = self.size();
        if (size > self.nodes * 4 && size > 1 << MIN_SHIFT) || size <= self.occupied + self.occupied / 16 {
            self.resize();
        }
    }

    /// `g_hash_table_resize`: to the size for `nodes * 1.333` (truncated), rehashed in place
    /// the way GLib does it, evicting and re-placing entries, which decides the slot order.
    fn resize(&mut self) {
        let old_size = self.size();
        self.set_shift_from_size((self.nodes as f64 * 1.333) as u32);
        let new_size = self.size();
        let span = old_size.max(new_size);
        self.hashes.resize(span, UNUSED);
        self.slots.resize(span, 0);
        let mut placed = vec![false; span];
        for i in 0..old_size {
            let mut hash = self.hashes[i];
            if !is_real(hash) {
                self.hashes[i] = UNUSED;
                continue;
            }
            if placed[i] {
                continue;
            }
            self.hashes[i] = UNUSED;
            let mut entry = self.slots[i];
            loop {
                let mut index = self.home(hash);
                let mut step = 0u32;
                while placed[index as usize] {
                    step += 1;
                    index = index.wrapping_add(step) & self.mask;
                }
                let slot = index as usize;
                placed[slot] = true;
                let replaced = self.hashes[slot];
                self.hashes[slot] = hash;
                let evicted = std::mem::replace(&mut self.slots[slot], entry);
                if !is_real(replaced) {
                    break;
                }
                hash = replaced;
                entry = evicted;
            }
        }
        self.hashes.truncate(new_size);
        self.slots.truncate(new_size);
        self.occupied = self.nodes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Value;

    fn dict(keys: &[&str]) -> Dict {
        let mut d = Dict::new();
        for k in keys {
            d.insert(k.as_bytes(), Value::Null);
        }
        d
    }

    #[test]
    fn str_hash_is_glibs_djb2_over_signed_chars() {
        assert_eq!(str_hash(b""), 5381);
        assert_eq!(str_hash(b"a"), 5381 * 33 + 97);
        assert_eq!(str_hash(&[0xFF]), (5381u32 * 33).wrapping_sub(1));
    }

    #[test]
    fn nothing_is_unexpected_when_every_member_was_visited() {
        let d = dict(&["id", "x"]);
        assert_eq!(first_unexpected(&d, &[b"id", b"x"]), None);
    }

    #[test]
    fn a_single_unexpected_member_is_named() {
        let d = dict(&["id", "x"]);
        assert_eq!(first_unexpected(&d, &[b"id"]), Some(&b"x"[..]));
    }

    #[test]
    fn the_table_keeps_every_key_through_growth_and_shrinking() {
        let names: Vec<String> = (0..5000).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let d = dict(&refs);
        let keys: Vec<&[u8]> = qdict_order(&d).map(|(k, _)| k).collect();
        let mut t = HashTable::new();
        for (i, k) in keys.iter().enumerate() {
            t.insert(&keys, i, k);
        }
        assert_eq!(t.nodes, 5000);
        for k in &keys[..4990] {
            t.remove(&keys, k);
        }
        assert!(t.size() <= 64, "shrank with the key count: {}", t.size());
        let mut left: Vec<usize> =
            t.hashes.iter().zip(&t.slots).filter(|(h, _)| is_real(**h)).map(|(_, s)| *s).collect();
        left.sort();
        assert_eq!(left, (4990..5000).collect::<Vec<_>>());
    }
}
