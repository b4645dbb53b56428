//! guest-get-users: the users with a login session in utmp (`USER_PROCESS` records), each
//! once, in order of first appearance, with its earliest login time, as 7.2 reads them with
//! `getutxent`. The utmp file is bound read-only into the front's empty view; without one the
//! list is empty, as in 7.2.

use super::held_file::HeldFile;
use crate::json::{Dict, Value};
use crate::qmp::AgentError;
use nix::libc;
use std::mem::{offset_of, size_of};

/// glibc's `_PATH_UTMP`.
const UTMP: &str = "/var/run/utmp";
const USER_PROCESS: i16 = libc::USER_PROCESS;
const RECORD: usize = size_of::<libc::utmpx>();

thread_local! {
    static UTMP_FILE: std::cell::RefCell<HeldFile> = const { std::cell::RefCell::new(HeldFile::new(UTMP)) };
}

thread_local! {
    /// The last answer and the utmp content it came from.
    static LAST_ANSWER: std::cell::RefCell<Option<(Vec<u8>, Vec<Value>)>> = const { std::cell::RefCell::new(None) };
}

pub fn get_users() -> Result<Value, AgentError> {
    let list = UTMP_FILE.with_borrow_mut(|utmp| {
        let data = utmp.read().unwrap_or_default();
        LAST_ANSWER.with_borrow_mut(|kept| answer(kept, data))
    });
    Ok(Value::List(list))
}

/// [`users`], reusing the kept answer while utmp holds the same bytes (it is answered from
/// memory while fresh, see `held_file`): the records are not walked again on every request.
fn answer(kept: &mut Option<(Vec<u8>, Vec<Value>)>, data: &[u8]) -> Vec<Value> {
    match kept {
        Some((content, list)) if content.as_slice() == data => list.clone(),
        _ => {
            let list = users(data);
            *kept = Some((data.to_vec(), list.clone()));
            list
        }
    }
}

fn field<const N: usize>(record: &[u8], offset: usize) -> [u8; N] {
    record[offset..offset + N].try_into().expect("inside the record")
}

fn users(data: &[u8]) -> Vec<Value> {
    let mut seen: Vec<(Vec<u8>, f64)> = Vec::new();
    // getutxent reads whole records only.
    for record in data.chunks_exact(RECORD) {
        let ut_type = i16::from_ne_bytes(field(record, offset_of!(libc::utmpx, ut_type)));
        if ut_type != USER_PROCESS {
            continue;
        }
        let user_at = offset_of!(libc::utmpx, ut_user);
        let user_field = &record[user_at..user_at + size_of::<[libc::c_char; 32]>()];
        let user = user_field.split(|&b| b == 0).next().unwrap_or_default().to_vec();
        let tv = offset_of!(libc::utmpx, ut_tv);
        let sec = i32::from_ne_bytes(field(record, tv));
        let usec = i32::from_ne_bytes(field(record, tv + 4));
        let login = f64::from(sec) + f64::from(usec) / 1_000_000.0;
        match seen.iter_mut().find(|(u, _)| *u == user) {
            Some((_, earliest)) if login < *earliest => *earliest = login,
            Some(_) => {}
            None => seen.push((user, login)),
        }
    }
    seen.into_iter()
        .map(|(user, login)| Dict::new().with("user", Value::Str(user)).with("login-time", Value::Float(login)).into())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ut_type: i16, user: &str, sec: i32, usec: i32) -> Vec<u8> {
        let mut r = vec![0u8; RECORD];
        let t = offset_of!(libc::utmpx, ut_type);
        r[t..t + 2].copy_from_slice(&ut_type.to_ne_bytes());
        let u = offset_of!(libc::utmpx, ut_user);
        r[u..u + user.len()].copy_from_slice(user.as_bytes());
        let tv = offset_of!(libc::utmpx, ut_tv);
        r[tv..tv + 4].copy_from_slice(&sec.to_ne_bytes());
        r[tv + 4..tv + 8].copy_from_slice(&usec.to_ne_bytes());
        r
    }

    #[test]
    fn the_utmp_record_is_glibcs_384_bytes() {
        assert_eq!(RECORD, 384);
        assert_eq!(offset_of!(libc::utmpx, ut_user), 44);
        assert_eq!(offset_of!(libc::utmpx, ut_tv), 340);
    }

    #[test]
    fn each_user_once_in_first_order_with_the_earliest_login() {
        let data = [
            record(libc::BOOT_TIME, "reboot", 5, 0),
            record(USER_PROCESS, "bob", 200, 500_000),
            record(USER_PROCESS, "alice", 300, 0),
            record(USER_PROCESS, "bob", 100, 250_000),
            record(libc::DEAD_PROCESS, "carol", 50, 0),
        ]
        .concat();
        let l = users(&data);
        assert_eq!(
            l,
            [
                Dict::new().with("user", Value::str("bob")).with("login-time", Value::Float(100.25)).into(),
                Dict::new().with("user", Value::str("alice")).with("login-time", Value::Float(300.0)).into(),
            ]
        );
    }

    #[test]
    fn the_kept_answer_is_used_only_for_the_same_content() {
        let mut kept = None;
        let one = record(USER_PROCESS, "bob", 1, 0);
        assert_eq!(answer(&mut kept, &one).len(), 1);
        assert_eq!(answer(&mut kept, &one).len(), 1);
        // A login more, then the same length with another user in place.
        let two = [one.clone(), record(USER_PROCESS, "eve", 2, 0)].concat();
        assert_eq!(answer(&mut kept, &two).len(), 2);
        let renamed = record(USER_PROCESS, "amy", 1, 0);
        assert_eq!(answer(&mut kept, &renamed), users(&renamed));
        assert_ne!(users(&renamed), users(&one));
        assert!(answer(&mut kept, &[]).is_empty());
    }

    #[test]
    fn a_trailing_partial_record_is_ignored() {
        let mut data = record(USER_PROCESS, "bob", 1, 0);
        data.extend_from_slice(&record(USER_PROCESS, "eve", 2, 0)[..100]);
        assert_eq!(users(&data).len(), 1);
    }
}
