#!/usr/bin/env python3
"""QEMU 7.2's own guest-agent test program, tests/unit/test-qga.c, run against qemu-ga-rs.
See tests/qemu-test-qga/README.md.

    python3 tests/qemu-test-qga/run.py [--agent PATH] [--reference] [--cache DIR] [--timeout S]

Builds test-qga and QEMU's qemu-ga from Debian's qemu 7.2 source package (cached, keyed by
the package version), then runs each of its 25 tests alone against the agent and prints one
line per test: PASS, FAIL, DIFFERENCE (a documented deliberate difference, failing exactly
at the expected assertion) or GAP (failing exactly because of a known missing piece). A GAP
or DIFFERENCE that passes, or fails anywhere else, is a FAIL. Exit status 0 only without FAIL.
"""

import argparse
import fcntl
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path("/var/cache/qemu-ga-rs-tests")

# What building test-qga needs, checked with dpkg and installed with apt-get when missing.
BUILD_PACKAGES = ["dpkg-dev", "xz-utils", "gcc", "libc6-dev", "pkg-config", "python3",
                  "libglib2.0-dev", "meson", "ninja-build"]
CONFIGURE_ARGS = ["--target-list=", "--disable-system", "--disable-user", "--enable-guest-agent",
                  "--disable-docs", "--disable-tools", "--disable-install-blobs"]
NINJA_TARGETS = ["tests/unit/test-qga", "qga/qemu-ga"]
# Written last into a finished build; a build without it (interrupted) is redone.
BUILD_STAMP = "complete: " + " ".join(CONFIGURE_ARGS) + " / " + " ".join(NINJA_TARGETS) + "\n"


# --- What each test is expected to do against qemu-ga-rs -----------------------------------

@dataclass(frozen=True)
class Pass:
    """QEMU's test must pass. `accepts_error_from` names a command whose error reply the test
    itself accepts (memory blocks "might not be exposed"): while qemu-ga-rs lacks it, the
    PASS line says so."""
    accepts_error_from: str = ""


@dataclass(frozen=True)
class Failure:
    """Where a known failure must happen: the `occurrence`-th line of `function` in test-qga.c
    that holds `assertion`, with GLib's assertion `message` (after "function: ")."""
    function: str
    assertion: str
    occurrence: int
    message: str


@dataclass(frozen=True)
class MissingCommand:
    """GAP: a 7.2 command qemu-ga-rs does not have yet; it must be absent from `-b help`."""
    command: str
    failure: Failure


@dataclass(frozen=True)
class Difference:
    """DIFFERENCE: deliberate, documented in qemu-ga-rs(8), IMPROVEMENTS OVER QEMU-GA."""
    what: str
    failure: Failure


NO_ERROR = "qmp_assert_no_error(ret);"


def missing_command(function, command):
    """The test's first request is `command`, which qemu-ga-rs does not have."""
    return MissingCommand(command, Failure(function, NO_ERROR, 1,
                                           f"assertion failed ret: CommandNotFound The command {command} has not "
                                           "been found"))


# The 25 tests of QEMU 7.2's test-qga, in its order, and what each must do against qemu-ga-rs.
# {agent_version} and {qemu_version} are filled in at run time.
EXPECTED = {
    "/qga/sync-delimited": Pass(),
    "/qga/sync": Pass(),
    "/qga/ping": Pass(),
    "/qga/info": Difference(
        "guest-info reports qemu-ga-rs's own version, not QEMU's",
        Failure("test_qga_info", "g_assert_cmpstr(version, ==, QEMU_VERSION);", 1,
                'assertion failed (version == QEMU_VERSION): ("{agent_version}" == "{qemu_version}")')),
    "/qga/network-get-interfaces": Pass(),
    "/qga/get-vcpus": Pass(),
    "/qga/get-fsinfo": Pass(),
    "/qga/get-memory-block-info": Pass(accepts_error_from="guest-get-memory-block-info"),
    "/qga/get-memory-blocks": Pass(accepts_error_from="guest-get-memory-blocks"),
    "/qga/file-ops": Pass(),
    "/qga/file-write-read": Pass(),
    "/qga/get-time": Pass(),
    "/qga/id": Pass(),
    "/qga/invalid-oob": Pass(),
    "/qga/invalid-cmd": Pass(),
    "/qga/invalid-args": Pass(),
    "/qga/fsfreeze-status": Pass(),
    "/qga/blockedrpcs": Pass(),
    "/qga/config": Pass(),
    "/qga/guest-exec": Pass(),
    "/qga/guest-exec-invalid": Pass(),
    "/qga/guest-get-osinfo": Pass(),
    "/qga/guest-get-host-name": Pass(),
    "/qga/guest-get-timezone": Pass(),
    "/qga/guest-get-users": Pass(),
}


class SetupError(Exception):
    """Something the run needs is missing or broken: the run fails loudly, nothing is counted."""


# --- Building test-qga from Debian's qemu source package -----------------------------------

def run(cmd, **kwargs):
    """Runs a build step; its output is shown only when it fails."""
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        raise SetupError(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{result.stdout[-6000:]}")
    return result.stdout


def install_build_packages():
    missing = [pkg for pkg in BUILD_PACKAGES
               if "install ok installed" not in subprocess.run(
                   ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True).stdout]
    if missing:
        print(f"installing: {' '.join(missing)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        wait = ["-o", "DPkg::Lock::Timeout=600"]  # another apt-get may be running
        run(["apt-get", *wait, "update", "-qq"], env=env)
        run(["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def machine_codename():
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise SetupError("no VERSION_CODENAME in /etc/os-release")


def apt_source_files():
    """The machine's apt source files, where apt itself looks for them."""
    out = run(["apt-config", "shell", "LIST", "Dir::Etc::sourcelist/f", "PARTS", "Dir::Etc::sourceparts/d"])
    paths = dict(re.findall(r"^(\w+)='(.*)'$", out, re.M))
    files = [Path(paths["LIST"])] if "LIST" in paths else []
    if "PARTS" in paths and Path(paths["PARTS"]).is_dir():
        files += sorted(p for p in Path(paths["PARTS"]).iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


def source_entries_from_one_line(text, codename):
    """`deb [options] URI SUITE COMPONENTS` lines of the distribution, turned into deb-src."""
    lines = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        rest = " ".join(words[1:])
        suite = re.sub(r"^\[[^]]*\]\s*", "", rest).split()[1:2]
        if suite and suite[0].startswith(codename):
            lines.append("deb-src " + rest)
    return lines


def source_stanzas_from_deb822(text, codename):
    """deb822 stanzas of the distribution that have Types deb, turned into deb-src; every other
    field (URIs, Components, Signed-By, ...) is kept as written."""
    stanzas = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = []  # [name, value-lines]
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and fields:
                fields[-1][1].append(line)
            elif ":" in line:
                name, value = line.split(":", 1)
                fields.append([name.strip(), [value.strip()]])
        values = {name.lower(): lines[0] for name, lines in fields}
        if "deb" not in values.get("types", "").split() or values.get("enabled", "yes").lower() == "no":
            continue
        suites = [s for s in values.get("suites", "").split() if s.startswith(codename)]
        if not suites:
            continue
        out = []
        for name, lines in fields:
            if name.lower() == "types":
                lines = ["deb-src"]
            elif name.lower() == "suites":
                lines = [" ".join(suites)]
            out.append(f"{name}: {lines[0]}" + "".join("\n" + cont for cont in lines[1:]))
        stanzas.append("\n".join(out))
    return stanzas


def private_apt_config(apt_dir):
    """An apt configuration of our own: deb-src entries for the machine's configured
    distribution mirrors (read at run time), and lists and caches apart from the system's."""
    codename = machine_codename()
    one_line, stanzas = [], []
    for path in apt_source_files():
        text = path.read_text()
        if path.suffix == ".sources":
            stanzas += source_stanzas_from_deb822(text, codename)
        else:
            one_line += source_entries_from_one_line(text, codename)
    if not one_line and not stanzas:
        raise SetupError(f"no apt source for the distribution '{codename}' found in {apt_source_files()}")
    parts = apt_dir / "sources.list.d"
    shutil.rmtree(parts, ignore_errors=True)
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    parts.mkdir(parents=True)
    (apt_dir / "sources.list").write_text("".join(line + "\n" for line in one_line))
    if stanzas:
        (parts / "deb-src.sources").write_text("\n\n".join(stanzas) + "\n")
    conf = apt_dir / "apt.conf"
    conf.write_text(
        f'Dir::Etc::SourceList "{apt_dir / "sources.list"}";\n'
        f'Dir::Etc::SourceParts "{parts}";\n'
        f'Dir::State::Lists "{apt_dir / "lists"}";\n'
        f'Dir::Cache "{apt_dir / "cache"}";\n')
    (apt_dir / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return ["-c", str(conf)]


def qemu_source_version(apt):
    """The version of the qemu source package apt would fetch (upstream 7.2 required)."""
    run(["apt-get", *apt, "update", "-qq"])
    out = run(["apt-get", *apt, "source", "--print-uris", "qemu"])
    versions = re.findall(r"^'\S+' qemu_(\S+)\.dsc ", out, re.M)
    if len(versions) != 1:
        raise SetupError(f"cannot tell which qemu source package apt would fetch:\n{out}")
    if not versions[0].startswith("7.2+"):
        raise SetupError(f"qemu source package {versions[0]} is not QEMU 7.2, which these expectations are for")
    return versions[0]


def build(cache, apt, version):
    """Fetches, unpacks, configures and builds test-qga and qemu-ga into cache/qemu-7.2/VERSION,
    unless a finished build is there. Older versions' builds are removed afterwards."""
    builds = cache / "qemu-7.2"
    here = builds / version
    if (here / "stamp").is_file() and (here / "stamp").read_text() == BUILD_STAMP:
        return here
    print(f"building QEMU's test-qga and qemu-ga from qemu {version} into {here}", flush=True)
    started = time.monotonic()
    shutil.rmtree(here, ignore_errors=True)
    download = here / "download"
    download.mkdir(parents=True)
    try:  # apt downloads as its sandbox user, which must be able to write here
        apt_user = pwd.getpwnam("_apt")
        os.chown(download, apt_user.pw_uid, apt_user.pw_gid)
    except KeyError:
        pass
    run(["apt-get", *apt, "source", "--download-only", "-qq", "qemu"], cwd=download)
    dsc = download / f"qemu_{version}.dsc"
    if not dsc.is_file():
        raise SetupError(f"apt-get source did not fetch {dsc.name}")
    # apt checked the files against the signed index it fetched them by.
    run(["dpkg-source", "--no-check", "--no-copy", "-x", str(dsc), str(here / "source")])
    shutil.rmtree(download)
    (here / "source" / "build").mkdir()
    run([str(here / "source" / "configure"), *CONFIGURE_ARGS], cwd=here / "source" / "build")
    run(["ninja", *NINJA_TARGETS], cwd=here / "source" / "build")
    (here / "stamp").write_text(BUILD_STAMP)
    for old in builds.iterdir():
        if old != here and old.is_dir():
            shutil.rmtree(old)
    print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    return here


def built_test_qga(cache, lock):
    """Returns the directory of a finished build, building it first when needed. One run at a
    time builds (a second waits, then reuses the build); while tests run, the build is held
    shared, so no run removes it as an older version meanwhile."""
    install_build_packages()
    fcntl.flock(lock, fcntl.LOCK_EX)
    apt = private_apt_config(cache / "apt")
    here = build(cache, apt, qemu_source_version(apt))
    fcntl.flock(lock, fcntl.LOCK_SH)
    return here


# --- Running the tests ----------------------------------------------------------------------

def run_directory(work, qemu, agent, reference):
    """A directory laid out as QEMU's build directory is, for test-qga to run in: it starts
    ./qga/qemu-ga and reads ./tests/data/test-qga-config. qga/qemu-ga is QEMU's own agent for
    --reference, else a wrapper that starts qemu-ga-rs with the allow-all policy."""
    build_dir = work / "build"
    (build_dir / "qga").mkdir(parents=True)
    (build_dir / "tests").mkdir()
    (build_dir / "tests" / "data").symlink_to(qemu / "source" / "tests" / "data")
    wrapper = build_dir / "qga" / "qemu-ga"
    if reference:
        wrapper.symlink_to(qemu / "source" / "build" / "qga" / "qemu-ga")
    else:
        policy = REPO_ROOT / "policy" / "allow-all.policy"
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(str(agent))} --policy {shlex.quote(str(policy))} "$@"\n')
        wrapper.chmod(0o755)
    return build_dir


def test_environment(work, qemu):
    env = {k: v for k, v in os.environ.items() if k not in ("QTEST_LOG", "QGA_OS_RELEASE")}
    (work / "tmp").mkdir()
    (work / "empty.conf").write_text("")
    env.update(TMPDIR=str(work / "tmp"),  # test-qga's qgatest.* directories, removed with work
               G_TEST_SRCDIR=str(qemu / "source" / "tests" / "unit"),  # the osinfo test's os-release
               QGA_CONF=str(work / "empty.conf"))  # no configuration file of this machine
    return env


def group_is_alive(pgid):
    """Whether a process of the group is still running (zombies, reaped by whoever inherited
    them, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def end_process_group(pgid):
    """test-qga aborts on a failed assertion without stopping the agent it started: end
    whatever is left of the test's own process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_is_alive(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while group_is_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
    if group_is_alive(pgid):
        raise SetupError(f"processes of test group {pgid} survive SIGKILL")


def run_test_qga(test_qga, args, cwd, env, timeout):
    """Runs test-qga in a process group of its own (every run starts an agent); returns (exit
    status or None on timeout, output). The output goes to a file, not a pipe: an agent left
    behind by an aborted test still holds it open."""
    with tempfile.TemporaryFile(mode="w+", errors="replace") as output:
        proc = subprocess.Popen([str(test_qga), *args], cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = None
        end_process_group(proc.pid)
        proc.wait()
        output.seek(0)
        return status, output.read()


def passed(name, status, out):
    """GLib's TAP output for exactly this one test, run and not skipped."""
    return status == 0 and re.search(rf"^ok 1 {re.escape(name)}$", out, re.M) is not None \
        and "# SKIP" not in out and re.search(r"^1\.\.1$", out, re.M) is not None


def assertion_line(source, failure):
    """The line number of the expected assertion, found in this version's test-qga.c."""
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"static void {failure.function}\(", line)), None)
    if start is None:
        raise SetupError(f"test-qga.c has no function {failure.function}")
    seen = 0
    for i in range(start + 1, len(lines)):
        if lines[i] == "}":
            break
        if lines[i].strip() == failure.assertion:
            seen += 1
            if seen == failure.occurrence:
                return i + 1
    raise SetupError(f"test-qga.c: {failure.function} has no assertion #{failure.occurrence} '{failure.assertion}'")


def failed_exactly_at(out, source, failure, values):
    """Whether the test aborted at the expected assertion with the expected message, and
    nowhere else."""
    errors = re.findall(r"^ERROR:(?:\S*/)?test-qga\.c:(\d+):(\w+): (.*)$", out, re.M)
    expected = (str(assertion_line(source, failure)), failure.function, failure.message.format(**values))
    return bool(errors) and all(error == expected for error in errors)


def verdict(name, expected, status, out, source, values, agent_commands):
    """(word, detail) for one test."""
    if status is None:
        return "FAIL", "timed out"
    ok = passed(name, status, out)
    if isinstance(expected, Pass):
        if not ok:
            return "FAIL", f"exit status {status}"
        if expected.accepts_error_from and expected.accepts_error_from not in agent_commands:
            return "PASS", f"(the test accepts an error reply; qemu-ga-rs has no {expected.accepts_error_from} yet)"
        return "PASS", ""
    if ok:
        return "FAIL", "passes now: remove it from the known failures (EXPECTED in run.py, the README's list)"
    where = expected.failure
    if not failed_exactly_at(out, source, where, values):
        return "FAIL", f"does not fail exactly at {where.function}'s '{where.assertion}' #{where.occurrence}"
    if isinstance(expected, MissingCommand):
        if expected.command in agent_commands:
            return "FAIL", f"{expected.command} exists in the agent, yet the test fails as if it did not"
        return "GAP", f"{expected.command} not implemented (CommandNotFound)"
    return "DIFFERENCE", f"{expected.what} ({values['agent_version']}, documented in qemu-ga-rs(8))"


def agent_facts(agent, qemu):
    """The agent's version and command names, and QEMU's version as test-qga has it."""
    version = run([agent, "-V"]).split()
    if len(version) != 2 or version[0] != "qemu-ga-rs":
        raise SetupError(f"{agent} -V printed {' '.join(version)!r}, expected 'qemu-ga-rs VERSION'")
    commands = set(run([agent, "-b", "help"]).split())
    config_host = (qemu / "source" / "build" / "config-host.h").read_text()
    qemu_version = re.search(r'^#define QEMU_VERSION "([^"]+)"$', config_host, re.M)
    if not qemu_version:
        raise SetupError("no QEMU_VERSION in the build's config-host.h")
    return {"agent_version": version[1], "qemu_version": qemu_version.group(1)}, commands


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default=str(REPO_ROOT / "target" / "release" / "qemu-ga-rs"),
                        help="the qemu-ga-rs binary (default: target/release/qemu-ga-rs)")
    parser.add_argument("--reference", action="store_true",
                        help="run the tests against QEMU's own qemu-ga from the same build instead: all must pass")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the QEMU build is kept between runs (default {DEFAULT_CACHE})")
    parser.add_argument("--timeout", type=float, default=60, help="seconds each test may take (default 60)")
    return parser.parse_args()


def main():
    args = parse_args()
    if os.geteuid() != 0:
        raise SetupError("run as root: it installs build packages, and qemu-ga-rs is meant to be started by root")
    agent = Path(args.agent).resolve()
    if not args.reference and not os.access(agent, os.X_OK):
        raise SetupError(f"{agent} is missing: cargo build --release --workspace")
    args.cache.mkdir(parents=True, exist_ok=True)
    lock = open(args.cache / "lock", "w")  # held until the process exits
    qemu = built_test_qga(args.cache, lock)
    test_qga = qemu / "source" / "build" / "tests" / "unit" / "test-qga"
    source = (qemu / "source" / "tests" / "unit" / "test-qga.c").read_text()
    values, agent_commands = agent_facts(agent, qemu) if not args.reference else ({}, set())

    work = Path(tempfile.mkdtemp(prefix="qemu-test-qga."))
    try:
        cwd = run_directory(work, qemu, agent, args.reference)
        env = test_environment(work, qemu)
        status, listing = run_test_qga(test_qga, ["-l"], cwd, env, args.timeout)
        names = [line for line in listing.splitlines() if line.startswith("/qga/")]
        if status != 0 or names != list(EXPECTED):
            raise SetupError(f"test-qga -l exited {status} listing {names}, expected {list(EXPECTED)}:\n{listing}")
        print(f"QEMU {qemu.name} test-qga against {'QEMU qemu-ga' if args.reference else agent}", flush=True)
        counts = {"PASS": 0, "FAIL": 0, "DIFFERENCE": 0, "GAP": 0}
        for name in names:
            status, out = run_test_qga(test_qga, ["-p", name], cwd, env, args.timeout)
            expected = Pass() if args.reference else EXPECTED[name]
            word, detail = verdict(name, expected, status, out, source, values, agent_commands)
            counts[word] += 1
            print(f"{word:<10} {name}{': ' + detail if detail else ''}", flush=True)
            if word == "FAIL":
                print("".join(f"    | {line}\n" for line in out.splitlines()[-40:]), end="", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{counts['DIFFERENCE']} documented differences, {counts['GAP']} gaps")
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as error:
        print(f"qemu-test-qga: {error}", file=sys.stderr)
        sys.exit(2)
