"""The account commands as libvirt drives them: virsh set-user-password, set-user-sshkeys (add,
--reset, --remove) and get-user-sshkeys, each checked against the guest's /etc/shadow and the
test user's ~/.ssh read through the control port. The guest image is the real-guest suite's,
with its test user qgatest and its stand-in chpasswd (tests/vm/README.md)."""

import secrets
import tempfile

from vmtest.checks_accounts import GID, HOME, KEY_A, KEY_B, KEY_C, KEYS, UID, USER, _openssl_sha512

from . import checks

USERS_PASSWORD = "qga lv:pw"


def _check(*needs):
    """checks.check, but registered before the first check that shuts the guest down, so these
    run on the shared guest without costing another boot."""
    def register(func):
        checks.check(*needs)(func)
        chk = checks.REGISTRY.pop()
        first_shutdown = next((i for i, c in enumerate(checks.REGISTRY) if "guest-shutdown" in c.needs),
                              len(checks.REGISTRY))
        checks.REGISTRY.insert(first_shutdown, chk)
        return func
    return register


def _shadow_field(ctx, user):
    fields = ctx.sh(f"grep '^{user}:' /etc/shadow").strip().split(":")
    ctx.expect(len(fields) == 9, f"the guest's shadow line for {user} is malformed: {fields}")
    return fields[1]


def _fresh_home(ctx):
    ctx.sh(f"rm -rf {HOME}/.ssh && chown {UID}:{GID} {HOME} && chmod 0755 {HOME}")


def _key_file(keys):
    """The keys for virsh --file, without a final newline: virsh splits the file at newlines and
    sends the empty string after a final one as one more key (the agent's log showed 3 keys
    for a file of two lines), which the agent writes as an empty line."""
    f = tempfile.NamedTemporaryFile("w", prefix="qga-lv-keys-", suffix=".pub")
    f.write("\n".join(keys))
    f.flush()
    return f


@_check("guest-set-user-password")
def set_user_password_plain_and_encrypted_reach_the_guests_shadow(ctx):
    """virsh set-user-password: the guest's /etc/shadow then holds a SHA-512 hash that openssl on
    the host recomputes from the password and the stored salt; with --encrypted, a hash made on
    the host lands verbatim."""
    password = f"{USERS_PASSWORD}{secrets.token_hex(3)}"
    ctx.vs("set-user-password", ctx.dom.name, USER, password)
    stored = _shadow_field(ctx, USER)
    ctx.expect(stored.startswith("$6$") and stored.count("$") == 3, f"not a SHA-512 crypt hash: {stored!r}")
    ctx.expect(_openssl_sha512(password, stored.split("$")[2]) == stored, "the stored hash is not the password's")
    hashed = _openssl_sha512(secrets.token_hex(8), secrets.token_hex(4))
    ctx.vs("set-user-password", ctx.dom.name, USER, hashed, "--encrypted")
    stored = _shadow_field(ctx, USER)
    ctx.expect(stored == hashed, f"--encrypted: shadow holds {stored!r}, virsh was given {hashed!r}")


@_check("guest-ssh-add-authorized-keys", "guest-ssh-remove-authorized-keys", "guest-ssh-get-authorized-keys")
def set_user_sshkeys_add_reset_remove_and_get_user_sshkeys(ctx):
    """virsh set-user-sshkeys --file (add), --reset --file, --remove --file and --reset alone,
    each read back from the guest's authorized_keys (owner uid/gid 1001, ~/.ssh 0700, the file
    0600), and virsh get-user-sshkeys listing exactly the file's keys each time."""
    _fresh_home(ctx)

    def content():
        return ctx.sh(f"cat {KEYS}").splitlines()

    def listed_is(keys):
        """get-user-sshkeys prints the agent's list (the file's keys, last first, as 7.2 gives
        them) with no separator between keys (this virsh's output), so compare the whole text."""
        out = ctx.vs("get-user-sshkeys", ctx.dom.name, USER).strip()
        ctx.expect(out == "".join(reversed(keys)), f"get-user-sshkeys printed {out!r} for the file's {keys}")

    def set_keys(keys, *options):
        with _key_file(keys) as f:
            ctx.vs("set-user-sshkeys", ctx.dom.name, USER, "--file", f.name, *options)

    set_keys([KEY_A, KEY_B])
    ctx.expect(content() == [KEY_A, KEY_B], f"after add: {content()}")
    modes = ctx.sh(f"stat -c '%u %g %a' {HOME}/.ssh {KEYS}").split("\n")
    ctx.expect(modes[:2] == [f"{UID} {GID} 700", f"{UID} {GID} 600"], f"owner and modes of ~/.ssh, the file: {modes}")
    listed_is([KEY_A, KEY_B])

    set_keys([KEY_C], "--reset")
    ctx.expect(content() == [KEY_C], f"after --reset: {content()}")
    set_keys([KEY_A])
    ctx.expect(content() == [KEY_C, KEY_A], f"after a second add: {content()}")
    listed_is([KEY_C, KEY_A])

    set_keys([KEY_C], "--remove")
    ctx.expect(content() == [KEY_A], f"after --remove: {content()}")
    listed_is([KEY_A])

    ctx.vs("set-user-sshkeys", ctx.dom.name, USER, "--reset")
    ctx.expect(ctx.sh(f"wc -c < {KEYS}").strip() == "0", f"after --reset alone the file holds {content()}")
    listed_is([])
    ctx.expect(ctx.sh(f"stat -c '%u %g %a' {KEYS}").strip() == f"{UID} {GID} 600", "the emptied file's owner or mode")
    _fresh_home(ctx)
