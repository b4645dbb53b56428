"""guest-set-user-password and guest-ssh-*-authorized-keys in the real guest. Every effect is
read from outside the agent, through the control port: the guest's /etc/shadow (set by the
image's stand-in chpasswd, guest/chpasswd) and the test user's ~/.ssh. Password hashes are
verified on the host with `openssl passwd`, an implementation independent of the guest's."""

import base64
import secrets
import shutil
import subprocess
import time

from . import hostenv
from .harness import NotApplicable, check

USER, UID, GID, HOME = "qgatest", 1001, 1001, "/home/qgatest"
KEYS = f"{HOME}/.ssh/authorized_keys"
KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKqgaTestKeyAlphaAlphaAlphaAlphaAlphaAlpha qga-a@host"
KEY_B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCqgaTestKeyBravoBravoBravoBravoBravo qga-b@host"
KEY_C = 'from="10.0.2.2" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKqgaTestKeyCharlieCharlie qga-c'
POLICY = "/etc/qemu-ga-rs/allow-all.policy"
SAVED = "/run/qga-test/allow-all.policy.saved"
REFUSED = "the policy does not allow "


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _fresh_home(ctx):
    """The test user's home as a new account has it: its own, 0755, no ~/.ssh."""
    ctx.guest_sh(f"rm -rf {HOME}/.ssh && chown {UID}:{GID} {HOME} && chmod 0755 {HOME}")


def _shadow_field(ctx, user):
    line = ctx.guest_sh(f"grep '^{user}:' /etc/shadow").strip()
    fields = line.split(":")
    ctx.expect(len(fields) == 9, f"the guest's shadow line for {user} is malformed: {line!r}")
    return fields[1]


def _shadow_digest(ctx):
    return ctx.guest_sh("sha256sum /etc/shadow").split()[0]


def _openssl_sha512(password, salt):
    """crypt(3)'s SHA-512 of `password` with `salt`, computed on the host."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise hostenv.HostSetupError("openssl not found on the host: it verifies the guest's password hashes")
    result = subprocess.run([openssl, "passwd", "-6", "-salt", salt, "-stdin"],
                            input=password + "\n", capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _stat(ctx, path):
    """`uid gid mode type` of `path` as the guest sees it (not following a link)."""
    return ctx.guest_sh(f"stat -c '%u %g %a %F' {path}").strip()


def _refused(ctx, command, arguments):
    reply = ctx.guest.agent.execute(command, arguments, 60)
    ctx.expect("error" in reply, f"{command} {arguments} should have been refused; got {reply}")
    return reply["error"]


@check(boot="pvh")
def set_user_password_plain_sets_a_hash_that_verifies_on_the_host(ctx):
    """guest-set-user-password with crypted=false (a password with a space and a colon): the
    guest's /etc/shadow then holds a SHA-512 hash of exactly that password, recomputed on the
    host with openssl from the stored salt; another password does not verify; root's line is
    unchanged."""
    root_before = _shadow_field(ctx, "root")
    password = f"qga pw:{secrets.token_hex(4)}!"
    ctx.call("guest-set-user-password", {"username": USER, "password": _b64(password), "crypted": False})
    stored = _shadow_field(ctx, USER)
    ctx.note(f"{USER}'s shadow hash: {stored}")
    ctx.expect(stored.startswith("$6$") and stored.count("$") == 3, f"not a SHA-512 crypt hash: {stored!r}")
    salt = stored.split("$")[2]
    ctx.expect(_openssl_sha512(password, salt) == stored, "the stored hash is not the password's")
    ctx.expect(_openssl_sha512(password + "x", salt) != stored, "another password verifies as well")
    ctx.expect(_shadow_field(ctx, "root") == root_before, "root's shadow line changed")


@check(boot="pvh")
def set_user_password_crypted_lands_verbatim_in_shadow(ctx):
    """guest-set-user-password with crypted=true and a hash made on the host: the guest's
    /etc/shadow holds exactly that hash."""
    hashed = _openssl_sha512(secrets.token_hex(8), secrets.token_hex(4))
    ctx.call("guest-set-user-password", {"username": USER, "password": _b64(hashed), "crypted": True})
    stored = _shadow_field(ctx, USER)
    ctx.expect(stored == hashed, f"shadow holds {stored!r}, the host sent {hashed!r}")


@check(boot="pvh")
def ssh_keys_add_get_remove_with_owner_and_modes(ctx):
    """On a home without ~/.ssh: add two keys creates ~/.ssh (0700) and authorized_keys (0600),
    both owned by the user, holding the keys in order; get lists them; adding one again adds
    nothing; reset replaces the file by the new key; add appends; remove takes exactly the named
    key out. Each content is read from the guest's file."""
    _fresh_home(ctx)

    def content():
        return ctx.guest_sh(f"cat {KEYS}")

    def got():
        return ctx.call("guest-ssh-get-authorized-keys", {"username": USER})["keys"]

    ctx.call("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_A, KEY_B]})
    ctx.expect(_stat(ctx, f"{HOME}/.ssh") == f"{UID} {GID} 700 directory", f"~/.ssh is {_stat(ctx, HOME + '/.ssh')}")
    ctx.expect(_stat(ctx, KEYS) == f"{UID} {GID} 600 regular file", f"authorized_keys is {_stat(ctx, KEYS)}")
    ctx.expect(content().splitlines() == [KEY_A, KEY_B], f"after add: {content()!r}")
    ctx.expect(sorted(got()) == sorted([KEY_A, KEY_B]), f"get lists {got()}")

    ctx.call("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_B]})
    ctx.expect(content().splitlines() == [KEY_A, KEY_B], f"adding a present key changed the file: {content()!r}")

    ctx.call("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_C], "reset": True})
    ctx.expect(content().splitlines() == [KEY_C], f"after reset: {content()!r}")
    ctx.expect(got() == [KEY_C], f"get after reset lists {got()}")

    ctx.call("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_A]})
    ctx.expect(content().splitlines() == [KEY_C, KEY_A], f"after a second add: {content()!r}")

    ctx.call("guest-ssh-remove-authorized-keys", {"username": USER, "keys": [KEY_C, KEY_B]})
    ctx.expect(content().splitlines() == [KEY_A], f"after remove: {content()!r}")
    ctx.expect(got() == [KEY_A], f"get after remove lists {got()}")
    ctx.expect(_stat(ctx, KEYS) == f"{UID} {GID} 600 regular file", f"authorized_keys is {_stat(ctx, KEYS)}")
    # Nothing but the file is left behind (no temporary files).
    ctx.expect(ctx.guest_sh(f"ls -A {HOME}/.ssh").split() == ["authorized_keys"],
               f"~/.ssh holds {ctx.guest_sh(f'ls -A {HOME}/.ssh').split()}")


@check(boot="pvh")
def ssh_keys_refuse_links_planted_in_the_users_home(ctx):
    """The user plants ~/.ssh/authorized_keys -> /etc/shadow: get, add and remove are refused
    with an error, the link stays, and /etc/shadow is byte for byte unchanged; add with reset
    replaces the link itself by the user's own file (as 7.2's rename does), never writing
    through it. Then ~/.ssh itself -> /etc: add is refused and /etc gains no authorized_keys."""
    if ctx.agent_spec.is_reference:
        # Seen with Debian's 7.2.22: get answered /etc/shadow's lines as keys, and add copied
        # them into a new authorized_keys owned by the user (the link replaced, shadow intact).
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 follows the link as root")
    _fresh_home(ctx)
    ctx.guest_sh(f"mkdir -m 0700 {HOME}/.ssh && ln -s /etc/shadow {KEYS} && chown -h {UID}:{GID} {HOME}/.ssh {KEYS}")
    before = _shadow_digest(ctx)
    for command, arguments in [
        ("guest-ssh-get-authorized-keys", {"username": USER}),
        ("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_A]}),
        ("guest-ssh-remove-authorized-keys", {"username": USER, "keys": [KEY_A]}),
    ]:
        error = _refused(ctx, command, arguments)
        ctx.note(f"{command}: {error.get('class')} {error.get('desc')!r}")
        ctx.expect(ctx.guest_sh(f"readlink {KEYS}").strip() == "/etc/shadow", f"after {command} the link is gone")
        ctx.expect(_shadow_digest(ctx) == before, f"/etc/shadow changed after {command}")

    ctx.call("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_A], "reset": True})
    ctx.expect(_shadow_digest(ctx) == before, "/etc/shadow changed after add with reset")
    ctx.expect(_stat(ctx, KEYS) == f"{UID} {GID} 600 regular file", f"authorized_keys is {_stat(ctx, KEYS)}")
    ctx.expect(ctx.guest_sh(f"cat {KEYS}").splitlines() == [KEY_A], "the new file does not hold the key")

    ctx.guest_sh(f"rm -rf {HOME}/.ssh && ln -s /etc {HOME}/.ssh && chown -h {UID}:{GID} {HOME}/.ssh")
    error = _refused(ctx, "guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_A], "reset": True})
    ctx.note(f"~/.ssh -> /etc: {error.get('desc')!r}")
    rc, _ = ctx.guest_sh_rc("test -e /etc/authorized_keys")
    ctx.expect(rc != 0, "/etc/authorized_keys was created through the ~/.ssh link")
    ctx.expect(_shadow_digest(ctx) == before, "/etc/shadow changed")
    _fresh_home(ctx)


@check(boot="pvh")
def password_and_ssh_keys_of_a_user_no_policy_rule_names_are_refused(ctx):
    """The agent reloads the shipped cloud-image policy adapted to the test user (its account
    rules name qgatest only): the password and every key command for root are refused by the
    policy, /etc/shadow is unchanged and /root/.ssh is not created; the same commands for
    qgatest work. The original policy is restored afterwards."""
    if ctx.agent_spec.is_reference:
        raise NotApplicable("not applicable to the reference: qemu-ga 7.2 has no policy")
    rc, _ = ctx.guest_sh_rc(f"test -f {POLICY}")
    if rc != 0:
        raise NotApplicable(f"the agent runs without {POLICY}")
    shipped = (hostenv.REPO_ROOT / "policy" / "cloud-image.policy").read_text()
    ctx.expect("user=cloud-user" in shipped, "the shipped cloud-image policy no longer names cloud-user")
    adapted = shipped.replace("user=cloud-user", f"user={USER}")
    _fresh_home(ctx)
    ctx.guest_sh("rm -rf /root/.ssh")
    root_password = {"username": "root", "password": _b64("qga-not-root"), "crypted": False}

    def hup_until(pred, what):
        ctx.guest_sh(". /usr/libexec/qga-test/lib.sh; kill -HUP $(agent_pid)")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = ctx.guest.agent.execute("guest-ssh-get-authorized-keys", {"username": "root"}, 30)
            if pred(reply.get("error", {}).get("desc", "")):
                return
            time.sleep(0.2)
        ctx.fail(f"after SIGHUP: {what}; last reply {reply}")

    before = _shadow_digest(ctx)
    ctx.guest_sh(f"cp -p {POLICY} {SAVED} && echo {_b64(adapted)} | base64 -d > {POLICY}")
    try:
        hup_until(lambda d: d.startswith(REFUSED), "root's keys are not refused by the policy")
        for command, arguments in [
            ("guest-set-user-password", root_password),
            ("guest-ssh-add-authorized-keys", {"username": "root", "keys": [KEY_A]}),
            ("guest-ssh-remove-authorized-keys", {"username": "root", "keys": [KEY_A]}),
            ("guest-ssh-get-authorized-keys", {"username": "root"}),
        ]:
            error = _refused(ctx, command, arguments)
            ctx.note(f"{command} for root: {error.get('class')} {error.get('desc')!r}")
            ctx.expect(error.get("desc", "").startswith(REFUSED + command),
                       f"{command} for root refused with {error}, not by the policy")
        ctx.expect(_shadow_digest(ctx) == before, "/etc/shadow changed")
        rc, _ = ctx.guest_sh_rc("test -e /root/.ssh")
        ctx.expect(rc != 0, "/root/.ssh was created")
        # The named user is served under the same policy.
        ctx.call("guest-ssh-add-authorized-keys", {"username": USER, "keys": [KEY_B]})
        ctx.expect(ctx.guest_sh(f"cat {KEYS}").splitlines() == [KEY_B], "qgatest's key was not written")
        hashed = _openssl_sha512("qga-allowed", secrets.token_hex(4))
        ctx.call("guest-set-user-password", {"username": USER, "password": _b64(hashed), "crypted": True})
        ctx.expect(_shadow_field(ctx, USER) == hashed, "qgatest's password was not set")
    finally:
        ctx.guest_sh(f"cp -p {SAVED} {POLICY}")
    hup_until(lambda d: not d.startswith(REFUSED), "the adapted policy is still in force")
    _fresh_home(ctx)
