"""guest-file-* with root's reach and the policy's path rules, in the real guest. The agent is
restarted with the shipped backup-appliance policy (policy/backup-appliance.policy) in place of
its allow-all policy, so its helper's sandbox is the one that policy gives at start: read beneath
/srv/backup/export/, write and create beneath /srv/backup/drop/, both root's 0755 directories.
Every effect is read from outside the agent through the control port: file contents, owners
and modes, what exists afterwards, and /etc/shadow's digest. The original policy comes back
with a second restart."""

import base64
import contextlib

from . import hostenv
from .checks_faults import _restarted
from .harness import NotApplicable, check

POLICY = "/etc/qemu-ga-rs/allow-all.policy"
SAVED = "/run/qga-test/allow-all.policy.files-saved"
EXPORT, DROP = "/srv/backup/export", "/srv/backup/drop"
OTHER = "/var/lib/qga-other"       # root's 0755 as well, named by no rule
REFUSED = "the policy does not allow guest-file-open "
LINK_REFUSAL = "(a symbolic link or a way out of its directory)"


def _b64(data):
    return base64.b64encode(data).decode()


def _restart_agent(ctx):
    starts_before = int(ctx.guest_sh("cat /run/qga-test/agent.starts"))
    ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -TERM $(agent_pid)")
    _restarted(ctx, starts_before)
    ctx.guest.agent.handshake(timeout=60)


@contextlib.contextmanager
def backup_appliance(ctx):
    """The agent restarted with the shipped backup-appliance policy and its directories made,
    root's and 0755, with one file to read in the export area."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 has no path rules")
    rc, _ = ctx.guest_sh_rc(f"test -f {POLICY}")
    if rc != 0:
        ctx.fail(f"the agent runs without {POLICY}: the backup-appliance policy cannot be put in its place")
    shipped = (hostenv.REPO_ROOT / "policy" / "backup-appliance.policy").read_bytes()
    for rule in (f"path={EXPORT}/ access=read", f"path={DROP}/ access=write,create"):
        ctx.expect(rule.encode() in shipped, f"the shipped backup-appliance policy no longer says {rule!r}")
    dirs = f"/srv /srv/backup {EXPORT} {DROP} {OTHER}"
    ctx.guest_sh(f"rm -rf /srv/backup {OTHER} && mkdir -p {dirs} && chown 0:0 {dirs} && chmod 0755 {dirs} && "
                 f"printf 'dump line 1\\ndump line 2\\n' > {EXPORT}/dump.sql && chmod 0600 {EXPORT}/dump.sql")
    ctx.guest_sh(f"cp -p {POLICY} {SAVED} && echo {_b64(shipped)} | base64 -d > {POLICY}")
    try:
        _restart_agent(ctx)
        yield
    finally:
        ctx.guest_sh(f"cp -p {SAVED} {POLICY}")
        _restart_agent(ctx)
        ctx.guest_sh(f"rm -rf /srv/backup {OTHER} /etc/qga-planted /etc/qga-escape")


def _front_ids(ctx):
    """The front's uid and CapEff, from the guest's /proc."""
    text = ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; grep -E '^(Uid|CapEff):' /proc/$(agent_pid)/status")
    fields = dict(line.split(":", 1) for line in text.strip().splitlines())
    return fields["Uid"].split(), fields["CapEff"].strip()


def _stat(ctx, path):
    return ctx.guest_sh(f"stat -c '%u %g %a %F' {path}").strip()


def _exists(ctx, path):
    rc, _ = ctx.guest_sh_rc(f"test -e {path} || test -L {path}")
    return rc == 0


def _shadow_digest(ctx):
    return ctx.guest_sh("sha256sum /etc/shadow").split()[0]


def _write_file(ctx, path, data):
    handle = ctx.call("guest-file-open", {"path": path, "mode": "w"})
    written = ctx.call("guest-file-write", {"handle": handle, "buf-b64": _b64(data)})
    ctx.expect(written.get("count") == len(data), f"guest-file-write answered {written}")
    ctx.call("guest-file-close", {"handle": handle})


def _read_file(ctx, path):
    handle = ctx.call("guest-file-open", {"path": path, "mode": "r"})
    got = ctx.call("guest-file-read", {"handle": handle, "count": 65536})
    ctx.call("guest-file-close", {"handle": handle})
    return base64.b64decode(got["buf-b64"])


def _refused(ctx, path, mode, why=""):
    reply = ctx.guest.agent.execute("guest-file-open", {"path": path, "mode": mode}, 30)
    error = reply.get("error", {})
    desc = error.get("desc", "")
    ctx.expect(error.get("class") == "GenericError" and desc.startswith(REFUSED) and why in desc,
               f"guest-file-open {path!r} mode {mode} should have been refused by the policy{' ' + why if why else ''}; "
               f"got {reply}")
    return desc


@check(boot="pvh")
def files_written_under_the_backup_appliance_drop_directory_are_roots_0644_and_refused_elsewhere(ctx):
    """With the backup-appliance policy, while the front runs as uid 990 without capabilities:
    a file written through guest-file-open/write/close beneath the drop directory has exactly
    the bytes sent, owner root:root and mode 0644 in the guest; the export area's root-only
    (0600) file reads back as the guest holds it; a write into another root-owned 0755
    directory, a write into the export area and a read in the drop directory are refused
    by the policy and nothing is created."""
    with backup_appliance(ctx):
        uids, cap_eff = _front_ids(ctx)
        ctx.expect(uids == ["990"] * 4 and cap_eff == "0000000000000000",
                   f"the front is not unprivileged: Uid {uids} CapEff {cap_eff}")
        data = b"restore job 42\n\x00\xffbinary tail\n"
        _write_file(ctx, f"{DROP}/restore.job", data)
        held = base64.b64decode("".join(ctx.guest_sh(f"base64 {DROP}/restore.job").split()))
        ctx.expect(held == data, f"the guest's file holds {held!r}, the host wrote {data!r}")
        ctx.expect(_stat(ctx, f"{DROP}/restore.job") == "0 0 644 regular file",
                   f"the new file is {_stat(ctx, DROP + '/restore.job')}, not root's 0644 regular file")
        ctx.note(f"{DROP}/restore.job: {_stat(ctx, DROP + '/restore.job')}")

        got = _read_file(ctx, f"{EXPORT}/dump.sql")
        ctx.expect(got == b"dump line 1\ndump line 2\n", f"the export file read back as {got!r}")

        for path, mode in [(f"{OTHER}/planted", "w"), (f"{EXPORT}/planted", "w"), (f"{EXPORT}/planted", "a"),
                           ("/etc/qga-planted", "w")]:
            desc = _refused(ctx, path, mode)
            ctx.expect(not _exists(ctx, path), f"{path} was created although the open was refused ({desc})")
        desc = _refused(ctx, f"{DROP}/restore.job", "r")
        ctx.note(f"read in the drop directory: {desc!r}")
        ctx.expect(_stat(ctx, f"{DROP}/restore.job") == "0 0 644 regular file", "the dropped file changed")


@check(boot="pvh")
def files_symlinks_and_dotdot_out_of_the_allowed_directories_are_refused(ctx):
    """Links planted in the allowed directories: drop/shadow -> /etc/shadow (write), export/shadow
    -> /etc/shadow (read), drop/etc -> /etc and export/etc -> /etc (a file beneath them), each
    refused as a symbolic link or a way out; '..' paths out of either directory refused; the
    links stay, /etc/shadow's sha256 is unchanged and nothing is created in /etc."""
    with backup_appliance(ctx):
        before = _shadow_digest(ctx)
        ctx.guest_sh(f"ln -s /etc/shadow {DROP}/shadow && ln -s /etc/shadow {EXPORT}/shadow && "
                     f"ln -s /etc {DROP}/etc && ln -s /etc {EXPORT}/etc")
        for path, mode in [(f"{DROP}/shadow", "w"), (f"{EXPORT}/shadow", "r"), (f"{DROP}/etc/qga-planted", "w"),
                           (f"{DROP}/etc/shadow", "w"), (f"{EXPORT}/etc/shadow", "r")]:
            desc = _refused(ctx, path, mode, LINK_REFUSAL)
            ctx.note(f"{path} ({mode}): refused")
        ctx.note(f"last refusal: {desc!r}")
        for path, mode in [(f"{EXPORT}/../../../etc/shadow", "r"), (f"{DROP}/../../../etc/qga-escape", "w"),
                           (f"{DROP}/../export/dump.sql", "r")]:
            _refused(ctx, path, mode)
        ctx.expect(_shadow_digest(ctx) == before, "/etc/shadow changed")
        for path in ("/etc/qga-planted", "/etc/qga-escape"):
            ctx.expect(not _exists(ctx, path), f"{path} was created")
        for link in (f"{DROP}/shadow", f"{EXPORT}/shadow"):
            ctx.expect(ctx.guest_sh(f"readlink {link}").strip() == "/etc/shadow", f"{link} was replaced")
