#!/usr/bin/env python3
"""Soak test for qemu-ga-rs: sends a large number of mixed requests (default 1,000,000) in
pipelined windows over a unix socket, checks that every request gets exactly the reply it
should, and reports the resident memory (VmRSS) and open descriptor count of the front and of
the privileged helper at the start, at a few points in between and at the end.

Only harmless commands are sent: nothing freezes, thaws, trims, shuts down, suspends or sets
the time or vCPUs. File commands work in a scratch directory inside the temporary directory.

Usage (as root, like the agent's service):
    tests/soak/soak.py [AGENT] [--requests N] [--window W] [--reconnect-every R]
AGENT defaults to target/release/qemu-ga-rs; the helper must be beside it.
"""

import argparse
import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def helper_of(front_pid):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == front_pid and os.readlink(f"/proc/{entry}/exe").endswith("qemu-ga-rs-helper"):
                return int(entry)
        except (OSError, ValueError):
            continue
    return None


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.buf = bytearray()

    def lines(self, n):
        """Reads exactly n reply lines (a 0xFF prefix is kept)."""
        out = []
        while len(out) < n:
            i = self.buf.find(b"\n")
            if i < 0:
                data = self.sock.recv(1 << 20)
                if not data:
                    raise RuntimeError(f"EOF after {len(out)} of {n} replies")
                self.buf += data
                continue
            out.append(bytes(self.buf[:i]))
            del self.buf[: i + 1]
        return out

    def close(self):
        self.sock.close()


class Soak:
    """Builds windows of requests, each with a checker for its reply (or None: no reply)."""

    def __init__(self, scratch, rng):
        self.scratch = scratch
        self.rng = rng
        self.next_id = 1
        self.file_no = 0

    def _id(self):
        self.next_id += 1
        return self.next_id

    def simple(self):
        """One request that needs no state: (bytes, check(line) -> None or raise)."""
        k = self.rng.randrange(100)
        if k < 15:
            return b'{"execute":"guest-ping"}', expect_json(lambda r: r == {"return": {}})
        if k < 30:
            i = self._id()
            return json.dumps({"execute": "guest-sync", "arguments": {"id": i}}).encode(), expect_json(lambda r: r == {"return": i})
        if k < 38:
            i = self._id()
            # 0xFF first: 7.2's error reply for the byte, then the delimited reply.
            return (
                b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": i}}).encode(),
                [expect_error("JSON parse error, stray '\ufffd'"), expect_raw(b"\xff" + json.dumps({"return": i}).encode())],
            )
        if k < 45:
            # The same list every time: the first answer is the reference (the count grows with
            # the command table, so it is not written here).
            def same_commands(r):
                names = [c["name"] for c in r["return"]["supported_commands"]]
                self._commands = getattr(self, "_commands", None) or names
                return names == self._commands and len(names) >= 23
            return b'{"execute":"guest-info"}', expect_json(same_commands)
        if k < 55:
            return b'{"execute":"guest-get-time"}', expect_json(lambda r: isinstance(r["return"], int))
        if k < 62:
            return b'{"execute":"guest-network-get-interfaces"}', expect_json(lambda r: isinstance(r["return"], list))
        if k < 69:
            return b'{"execute":"guest-get-vcpus"}', expect_json(lambda r: isinstance(r["return"], list) and len(r["return"]) > 0)
        if k < 76:
            return b'{"execute":"guest-fsfreeze-status"}', expect_json(lambda r: r == {"return": "thawed"})
        if k < 84:
            bad = self.rng.choice([b'{"execute":', b'{"execute" "guest-ping"}', b"[1,2", b"{'execute': tru}"])
            if bad == b'{"execute":':
                # Completed by the closing brace: "expecting value".
                return bad + b"}", expect_error("JSON parse error, expecting value")
            if bad == b'{"execute" "guest-ping"}':
                return bad, expect_error("JSON parse error, missing : in object pair")
            if bad == b"[1,2":
                return bad + b"]", expect_error("QMP input must be a JSON object")
            return bad, expect_error("JSON parse error, invalid keyword 'tru'")
        if k < 92:
            return (
                b'{"execute":"guest-no-such-command","id":"x"}',
                expect_json(lambda r: r == {"id": "x", "error": {"class": "CommandNotFound", "desc": "The command guest-no-such-command has not been found"}}),
            )
        return (
            b'{"execute":"guest-sync","arguments":{"id":"nope"}}',
            expect_error("Invalid parameter type for 'id', expected: integer"),
        )


def expect_json(pred):
    def check(line):
        r = json.loads(line)
        if not pred(r):
            raise AssertionError(f"unexpected reply: {line[:300]!r}")
    return check


def expect_error(desc):
    return expect_json(lambda r: r.get("error", {}).get("desc") == desc and "return" not in r)


def expect_raw(raw):
    def check(line):
        if line != raw:
            raise AssertionError(f"expected {raw!r}, got {line[:300]!r}")
    return check


def cmd(conn, obj):
    conn.sock.sendall(json.dumps(obj).encode())
    r = json.loads(conn.lines(1)[0])
    if "error" in r:
        raise AssertionError(f"{obj['execute']}: {r}")
    return r["return"]


def file_cycle(conn, scratch, n, rng):
    """open (w+), write, seek, read, close: 5 requests, each checked."""
    path = os.path.join(scratch, f"f{n % 64}")
    data = rng.randbytes(rng.randrange(0, 4096))
    h = cmd(conn, {"execute": "guest-file-open", "arguments": {"path": path, "mode": "w+"}})
    w = cmd(conn, {"execute": "guest-file-write", "arguments": {"handle": h, "buf-b64": base64.b64encode(data).decode()}})
    assert w["count"] == len(data), w
    s = cmd(conn, {"execute": "guest-file-seek", "arguments": {"handle": h, "offset": 0, "whence": "set"}})
    assert s["position"] == 0, s
    r = cmd(conn, {"execute": "guest-file-read", "arguments": {"handle": h, "count": 8192}})
    assert base64.b64decode(r["buf-b64"]) == data and r["eof"] is True, r
    assert cmd(conn, {"execute": "guest-file-close", "arguments": {"handle": h}}) == {}
    return 5


def sample(front, helper):
    return {
        "front_rss_kib": proc_kib(front, "VmRSS"),
        "front_fds": fd_count(front),
        "helper_rss_kib": proc_kib(helper, "VmRSS"),
        "helper_fds": fd_count(helper),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("agent", nargs="?", default=os.path.join(REPO, "target/release/qemu-ga-rs"))
    ap.add_argument("--policy", default=os.path.join(REPO, "policy/allow-all.policy"))
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=500, help="requests written before replies are read")
    ap.add_argument("--reconnect-every", type=int, default=20, help="windows per connection")
    ap.add_argument("--file-cycle-every", type=int, default=4, help="a file open..close cycle every N windows")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--samples", type=int, default=10, help="memory/fd samples in between")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="qga-soak-")
    os.chmod(tmp, 0o755)
    scratch = os.path.join(tmp, "scratch")
    os.mkdir(scratch)
    os.chmod(scratch, 0o1777)
    sock = os.path.join(tmp, "qga.sock")
    stderr = open(os.path.join(tmp, "stderr"), "wb")
    env = dict(os.environ, QGA_CONF=os.path.join(tmp, "no-such.conf"))
    agent = subprocess.Popen(
        [args.agent, "-m", "unix-listen", "-p", sock, "-t", tmp, "--policy", args.policy],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=tmp,
    )
    failed = False
    try:
        deadline = time.time() + 10
        helper = None
        while time.time() < deadline:
            if agent.poll() is not None:
                raise RuntimeError(f"the agent exited with {agent.returncode}")
            helper = helper or helper_of(agent.pid)
            if helper and os.path.exists(sock):
                try:
                    c = Conn(sock)
                    cmd(c, {"execute": "guest-sync", "arguments": {"id": 1}})
                    c.close()
                    break
                except OSError:
                    pass
            time.sleep(0.05)
        else:
            raise RuntimeError("the agent did not come up")

        # Let the agent see the probe connection close before the first sample.
        time.sleep(0.2)
        soak = Soak(scratch, rng)
        samples = []
        start = time.time()
        sent = 0
        replies = 0
        windows = 0
        next_sample = 0
        sample_every = max(1, args.requests // args.samples)
        conn = None
        warm = None
        while sent < args.requests:
            if sent >= next_sample:
                s = sample(agent.pid, helper)
                s["requests"] = sent
                s["seconds"] = round(time.time() - start, 1)
                samples.append(s)
                print(json.dumps(s), flush=True)
                next_sample += sample_every
            if conn is None or windows % args.reconnect_every == 0:
                if conn is not None:
                    conn.close()
                conn = Conn(sock)
            windows += 1
            if windows % args.file_cycle_every == 0:
                n = file_cycle(conn, scratch, windows, rng)
                sent += n
                replies += n
            batch = []
            checks = []
            count = min(args.window, args.requests - sent)
            for _ in range(count):
                req, check = soak.simple()
                batch.append(req)
                checks.extend(check if isinstance(check, list) else [check])
            conn.sock.sendall(b"".join(batch))
            for line, check in zip(conn.lines(len(checks)), checks):
                check(line)
            sent += count
            replies += len(checks)
            if warm is None and sent >= args.requests // 20:
                # After warm-up (5%): the reference point for "flat".
                warm = sample(agent.pid, helper)
                warm["requests"] = sent
        conn.close()
        # A final clean connection, so the agent is idle when the end is sampled.
        c = Conn(sock)
        cmd(c, {"execute": "guest-sync", "arguments": {"id": 2}})
        c.close()
        time.sleep(0.2)
        end = sample(agent.pid, helper)
        end["requests"] = sent
        end["seconds"] = round(time.time() - start, 1)
        samples.append(end)
        print(json.dumps(end), flush=True)
        duration = time.time() - start
        first = samples[0]
        print()
        print(f"requests sent: {sent}, replies checked: {replies}, windows: {windows}, duration: {duration:.1f} s ({sent / duration:.0f} requests/s)")
        print("                 start   after warm-up   end")
        for key in ("front_rss_kib", "front_fds", "helper_rss_kib", "helper_fds"):
            print(f"{key:16} {first[key]:6}   {warm[key]:13}   {end[key]:6}")
        # Flat: descriptors exactly back, memory within 1 MiB of the post-warm-up value.
        flat = (
            end["front_fds"] == first["front_fds"]
            and end["helper_fds"] == first["helper_fds"]
            and end["front_rss_kib"] <= warm["front_rss_kib"] + 1024
            and end["helper_rss_kib"] <= warm["helper_rss_kib"] + 1024
        )
        print("flat" if flat else "NOT FLAT")
        failed = not flat
    except Exception as e:  # report, keep the temp dir for inspection
        print(f"soak failed: {e}", file=sys.stderr)
        failed = True
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
        if failed:
            print(f"agent stderr kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
