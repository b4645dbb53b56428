//! Command-name helpers shared by the file parser and the `-b`/`-a` lists: exact lookup in the
//! command table, the `*` glob, and the "did you mean" hint for a misspelt name.

use crate::catalog::{Command, TABLE};

/// Whether `name` matches `pattern`, where `*` matches any run of characters (also none) and
/// every other character matches itself. No `?`, no classes: the grammar stays small.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Classic greedy matcher with one backtrack point (the last `*`): linear enough for names
    // of a few dozen bytes, no recursion.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The commands a glob matches, in schema order.
pub fn glob_commands(pattern: &str) -> Vec<Command> {
    TABLE.iter().filter(|s| glob_matches(pattern, s.name)).map(|s| s.command).collect()
}

/// Whether a glob uses only the characters command names are made of, plus `*`.
pub fn glob_is_well_formed(pattern: &str) -> bool {
    pattern.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'*')
}

/// Edit distance with adjacent transpositions (optimal string alignment): "raed" is one typo
/// away from "read", not two.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The real command nearest to a misspelt `name`, if one is close enough to be a plausible
/// typo. Case is ignored and a missing "guest-" prefix is forgiven, because those are the
/// mistakes people make; anything further away gets no hint rather than a misleading one.
pub fn nearest_command(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let prefixed = format!("guest-{lower}");
    let mut best: Option<(usize, &'static str)> = None;
    for spec in TABLE.iter() {
        let mut d = distance(&lower, spec.name);
        if !lower.starts_with("guest-") {
            d = d.min(distance(&prefixed, spec.name));
        }
        // Strictly smaller only: ties go to the earlier command in schema order.
        match best {
            Some((bd, _)) if bd <= d => {}
            _ => best = Some((d, spec.name)),
        }
    }
    let (d, cand) = best?;
    // About one typo per five characters, at least two: "guest-fsfreez-thwa" still finds its
    // command, "guest-get-load" (a later qemu-ga command this agent does not have) finds none.
    let limit = (cand.len() / 5).max(2);
    (d <= limit).then_some(cand)
}

/// Exact lookup, or the hint for the error.
pub fn lookup(name: &str) -> Result<Command, Option<&'static str>> {
    Command::from_name(name).ok_or_else(|| nearest_command(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(glob_matches("guest-file-*", "guest-file-read"));
        assert!(glob_matches("guest-*-status", "guest-fsfreeze-status"));
        assert!(glob_matches("*", "guest-ping"));
        assert!(glob_matches("guest-ping*", "guest-ping"));
        assert!(glob_matches("*sync*", "guest-sync-delimited"));
        assert!(!glob_matches("guest-file-*", "guest-fsfreeze-thaw"));
        assert!(!glob_matches("guest-ping", "guest-ping2"));
        assert!(!glob_matches("guest-*-read", "guest-file-write"));
    }

    #[test]
    fn hint_finds_transposed_and_missing_letters() {
        assert_eq!(nearest_command("guest-file-raed"), Some("guest-file-read"));
        assert_eq!(nearest_command("guest-fsfreeze-thw"), Some("guest-fsfreeze-thaw"));
        assert_eq!(nearest_command("guest-pnig"), Some("guest-ping"));
    }

    #[test]
    fn hint_forgives_case_and_missing_guest_prefix() {
        assert_eq!(nearest_command("Guest-Ping"), Some("guest-ping"));
        assert_eq!(nearest_command("file-read"), Some("guest-file-read"));
        assert_eq!(nearest_command("shutdown"), Some("guest-shutdown"));
    }

    #[test]
    fn no_hint_for_names_far_from_every_command() {
        assert_eq!(nearest_command("guest-get-load"), None);
        assert_eq!(nearest_command("guest-network-get-route"), None);
        assert_eq!(nearest_command("rm -rf"), None);
    }
}
