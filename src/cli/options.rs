//! Splits the command line into options the way glibc's `getopt_long` does with 7.2's option
//! table (`"hVvdm:p:l:f:F::b:t:Dr"`), extended with 10.0's `-a`/`-c` and our long-only
//! `--user`, `--policy` and `--check-policy`. The spellings and argument kinds are the rows of
//! `table.rs`.
//!
//! getopt rules kept:
//! - short flags group (`-vd`); a required argument is the rest of the group (`-mvirtio-serial`)
//!   or else the next argument, whatever it looks like (`-m -v` gives `-m` the value `-v`);
//! - `-F` takes an optional argument only when attached (`-F/path`), `--fsfreeze-hook` only
//!   with `=`; a separate `-F /path` leaves `/path` as a non-option argument;
//! - `--long=value` and `--long value`; a long name may be abbreviated to any unique prefix,
//!   and prefixes that only match names of the same option (`--bl` for `--block-rpcs` and
//!   `--blacklist`) take the first in the table, as glibc does;
//! - `--` ends the options, `-` alone is a non-option argument;
//! - non-options are collected apart (glibc permutes them to the end): the caller decides.
//!
//! One extension: `--check-policy` takes its optional FILE either as `--check-policy=FILE` or
//! as the next argument when that does not start with `-`. The agent has no operands, so the
//! separate form is unambiguous, and it is the form people type.
//!
//! Errors use glibc's wording without the program-name prefix; the first error ends the scan
//! (7.2 exits at the first unknown option).

use super::table::{CliOption, HasArg, Opt, OPTIONS};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// A short option's row.
fn short(c: u8) -> Option<&'static CliOption> {
    OPTIONS.iter().find(|o| o.short == Some(c))
}

/// Options that are one getopt option under two names (same `val` in 7.2's table), so that
/// an abbreviation matching both is not ambiguous.
fn same_option(a: Opt, b: Opt) -> bool {
    let val = |o| if o == Opt::Blacklist { Opt::BlockRpcs } else { o };
    val(a) == val(b)
}

/// One option found on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub opt: Opt,
    pub arg: Option<OsString>,
}

/// The scan's result: options in order, non-option arguments, and the error that stopped the
/// scan, if any (after the options found before it, which 7.2 has already acted on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub tokens: Vec<Token>,
    pub operands: Vec<OsString>,
    pub error: Option<String>,
}

fn os(bytes: &[u8]) -> OsString {
    OsStr::from_bytes(bytes).to_os_string()
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Scans `args` (without argv[0]).
pub fn scan(args: &[OsString]) -> Scan {
    let mut out = Scan::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        let result = if let Some(long) = arg.strip_prefix(b"--") {
            scan_long(long, args, &mut i, &mut out.tokens)
        } else if arg.len() > 1 && arg[0] == b'-' {
            scan_short(&arg[1..], args, &mut i, &mut out.tokens)
        } else {
            out.operands.push(args[i - 1].clone());
            Ok(())
        };
        if let Err(e) = result {
            out.error = Some(e);
            break;
        }
    }
    out
}

fn scan_long(body: &[u8], args: &[OsString], i: &mut usize, tokens: &mut Vec<Token>) -> Result<(), String> {
    let (name, attached) = match body.iter().position(|&b| b == b'=') {
        Some(eq) => (&body[..eq], Some(&body[eq + 1..])),
        None => (body, None),
    };
    let found = match OPTIONS.iter().find(|o| o.long.as_bytes() == name) {
        Some(exact) => exact,
        None => {
            // In 7.2's table order, which decides ties and the order of the possibilities.
            let mut candidates: Vec<&CliOption> =
                OPTIONS.iter().filter(|o| o.long.as_bytes().starts_with(name)).collect();
            candidates.sort_by_key(|o| o.getopt_rank);
            match candidates.first() {
                None => return Err(format!("unrecognized option '--{}'", show(body))),
                Some(first) if candidates.iter().all(|c| same_option(c.opt, first.opt)) => *first,
                Some(_) => {
                    let list: Vec<String> = candidates.iter().map(|c| format!("'--{}'", c.long)).collect();
                    return Err(format!("option '--{}' is ambiguous; possibilities: {}", show(body), list.join(" ")));
                }
            }
        }
    };
    let arg = match (found.has_arg, attached) {
        (HasArg::No, Some(_)) => return Err(format!("option '--{}' doesn't allow an argument", found.long)),
        (HasArg::No, None) => None,
        (_, Some(value)) => Some(os(value)),
        (HasArg::Required, None) => match args.get(*i) {
            Some(next) => {
                *i += 1;
                Some(next.clone())
            }
            None => return Err(format!("option '--{}' requires an argument", found.long)),
        },
        (HasArg::Optional, None) => None,
        (HasArg::OptionalOrNext, None) => match args.get(*i) {
            Some(next) if !next.as_bytes().starts_with(b"-") => {
                *i += 1;
                Some(next.clone())
            }
            _ => None,
        },
    };
    tokens.push(Token { opt: found.opt, arg });
    Ok(())
}

fn scan_short(group: &[u8], args: &[OsString], i: &mut usize, tokens: &mut Vec<Token>) -> Result<(), String> {
    let mut k = 0;
    while k < group.len() {
        let c = group[k];
        k += 1;
        let Some(&CliOption { opt, has_arg, .. }) = short(c) else {
            // A non-ASCII byte is shown as glibc would print it: raw, here made readable.
            return Err(format!("invalid option -- '{}'", show(&[c])));
        };
        let rest = &group[k..];
        let arg = match has_arg {
            HasArg::No => None,
            HasArg::Required if !rest.is_empty() => Some(os(rest)),
            HasArg::Required => match args.get(*i) {
                Some(next) => {
                    *i += 1;
                    Some(next.clone())
                }
                None => return Err(format!("option requires an argument -- '{}'", c as char)),
            },
            HasArg::Optional | HasArg::OptionalOrNext if !rest.is_empty() => Some(os(rest)),
            HasArg::Optional | HasArg::OptionalOrNext => None,
        };
        tokens.push(Token { opt, arg });
        if has_arg != HasArg::No {
            // An option that takes an argument ends the group, with or without one.
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn tok(opt: Opt, arg: Option<&str>) -> Token {
        Token { opt, arg: arg.map(OsString::from) }
    }

    fn ok(list: &[&str]) -> Vec<Token> {
        let s = scan(&args(list));
        assert_eq!(s.error, None, "{list:?}");
        assert!(s.operands.is_empty(), "{list:?}");
        s.tokens
    }

    fn error(list: &[&str]) -> String {
        scan(&args(list)).error.unwrap_or_else(|| panic!("{list:?} scanned"))
    }

    #[test]
    fn grouped_short_flags() {
        assert_eq!(
            ok(&["-vdrD"]),
            vec![
                tok(Opt::Verbose, None),
                tok(Opt::Daemonize, None),
                tok(Opt::RetryPath, None),
                tok(Opt::DumpConf, None)
            ]
        );
    }

    #[test]
    fn short_argument_attached_separate_and_ending_a_group() {
        assert_eq!(ok(&["-mvirtio-serial"]), vec![tok(Opt::Method, Some("virtio-serial"))]);
        assert_eq!(ok(&["-m", "isa-serial"]), vec![tok(Opt::Method, Some("isa-serial"))]);
        assert_eq!(ok(&["-vmisa-serial"]), vec![tok(Opt::Verbose, None), tok(Opt::Method, Some("isa-serial"))]);
        assert_eq!(ok(&["-vm", "x"]), vec![tok(Opt::Verbose, None), tok(Opt::Method, Some("x"))]);
    }

    #[test]
    fn required_argument_takes_the_next_word_even_if_it_looks_like_an_option() {
        assert_eq!(ok(&["-m", "-v"]), vec![tok(Opt::Method, Some("-v"))]);
        assert_eq!(ok(&["--path", "--"]), vec![tok(Opt::Path, Some("--"))]);
    }

    #[test]
    fn optional_f_argument_only_attached() {
        assert_eq!(ok(&["-F"]), vec![tok(Opt::FsfreezeHook, None)]);
        assert_eq!(ok(&["-F/x"]), vec![tok(Opt::FsfreezeHook, Some("/x"))]);
        assert_eq!(ok(&["-vFd"]), vec![tok(Opt::Verbose, None), tok(Opt::FsfreezeHook, Some("d"))]);
        assert_eq!(ok(&["--fsfreeze-hook"]), vec![tok(Opt::FsfreezeHook, None)]);
        assert_eq!(ok(&["--fsfreeze-hook=/x"]), vec![tok(Opt::FsfreezeHook, Some("/x"))]);
        assert_eq!(ok(&["--fsfreeze-hook="]), vec![tok(Opt::FsfreezeHook, Some(""))]);
        let s = scan(&args(&["-F", "/x"]));
        assert_eq!(s.tokens, vec![tok(Opt::FsfreezeHook, None)]);
        assert_eq!(s.operands, args(&["/x"]));
        let s = scan(&args(&["--fsfreeze-hook", "/x"]));
        assert_eq!(s.operands, args(&["/x"]));
    }

    #[test]
    fn long_options_with_equals_or_separate_value() {
        assert_eq!(ok(&["--method=isa-serial"]), vec![tok(Opt::Method, Some("isa-serial"))]);
        assert_eq!(ok(&["--method", "isa-serial"]), vec![tok(Opt::Method, Some("isa-serial"))]);
        assert_eq!(ok(&["--block-rpcs=a=b"]), vec![tok(Opt::BlockRpcs, Some("a=b"))]);
        assert_eq!(ok(&["--path="]), vec![tok(Opt::Path, Some(""))]);
    }

    #[test]
    fn long_options_may_be_abbreviated_to_a_unique_prefix() {
        assert_eq!(ok(&["--meth=x"]), vec![tok(Opt::Method, Some("x"))]);
        assert_eq!(ok(&["--dump"]), vec![tok(Opt::DumpConf, None)]);
        assert_eq!(ok(&["--pol", "p"]), vec![tok(Opt::Policy, Some("p"))]);
        assert_eq!(ok(&["--blac", "x"]), vec![tok(Opt::Blacklist, Some("x"))]);
        // Both names of one option: glibc takes the first in the table.
        assert_eq!(ok(&["--bl", "x"]), vec![tok(Opt::BlockRpcs, Some("x"))]);
    }

    #[test]
    fn ambiguous_prefix_is_an_error_listing_possibilities() {
        assert_eq!(error(&["--d"]), "option '--d' is ambiguous; possibilities: '--dump-conf' '--daemonize'");
        assert_eq!(error(&["--p=x"]), "option '--p=x' is ambiguous; possibilities: '--pidfile' '--path' '--policy'");
    }

    #[test]
    fn check_policy_takes_equals_or_a_next_word_not_starting_with_dash() {
        assert_eq!(ok(&["--check-policy"]), vec![tok(Opt::CheckPolicy, None)]);
        assert_eq!(ok(&["--check-policy=/p"]), vec![tok(Opt::CheckPolicy, Some("/p"))]);
        assert_eq!(ok(&["--check-policy", "/p"]), vec![tok(Opt::CheckPolicy, Some("/p"))]);
        assert_eq!(ok(&["--check-policy", "-v"]), vec![tok(Opt::CheckPolicy, None), tok(Opt::Verbose, None)]);
    }

    #[test]
    fn getopt_error_messages() {
        assert_eq!(error(&["-x"]), "invalid option -- 'x'");
        assert_eq!(error(&["-vx"]), "invalid option -- 'x'");
        assert_eq!(error(&["-m"]), "option requires an argument -- 'm'");
        assert_eq!(error(&["--foo=1"]), "unrecognized option '--foo=1'");
        assert_eq!(error(&["--method"]), "option '--method' requires an argument");
        assert_eq!(error(&["--dump-conf=1"]), "option '--dump-conf' doesn't allow an argument");
        assert_eq!(error(&["--dum=1"]), "option '--dump-conf' doesn't allow an argument");
    }

    #[test]
    fn the_first_error_stops_the_scan_after_earlier_options() {
        let s = scan(&args(&["-v", "-x", "-h"]));
        assert_eq!(s.tokens, vec![tok(Opt::Verbose, None)]);
        assert_eq!(s.error.as_deref(), Some("invalid option -- 'x'"));
    }

    #[test]
    fn double_dash_ends_options_and_single_dash_is_an_operand() {
        let s = scan(&args(&["-v", "-", "--", "-h"]));
        assert_eq!(s.tokens, vec![tok(Opt::Verbose, None)]);
        assert_eq!(s.operands, args(&["-", "-h"]));
        assert_eq!(s.error, None);
    }

    #[test]
    fn non_utf8_arguments_pass_through() {
        let raw = OsString::from(OsStr::from_bytes(b"-l/var/log/\xff"));
        let s = scan(&[raw]);
        assert_eq!(s.tokens, vec![Token { opt: Opt::Logfile, arg: Some(os(b"/var/log/\xff")) }]);
    }
}
