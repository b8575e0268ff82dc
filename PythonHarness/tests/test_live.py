"""Live mode: `run --live` in a real terminal (tmux), `run --live-remote` with
`heapscope live` viewers, the live stream read by a client of its own, and
the bad inputs. The script grows a known function by known amounts and waits
for the test between its phases, so nothing here depends on timing."""
import os
import pty
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import clean_env, heapscope_command, write

MAGIC = b"\x89HSC\r\n\x1a\n"
GREETING = b"HEAPSCOPE-LIVE 1\n"
MIB = 1 << 20

# 20 blocks of 1 MiB in grow(), 1 MiB in four blocks on the thread "worker";
# then, once `release` exists, grow's blocks drop to 10 and the program exits 7.
GROW = """\
import os, sys, threading, time
import fractions   # imported while recording: the import system's frames, for the `i` key

hold = []


def wait(name):
    while not os.path.exists(name):
        time.sleep(0.02)


def grow(n):
    for _ in range(n):
        hold.append(bytes(1 << 20))


def marker():
    return bytes(54321)


def worker_hold():
    data = [bytearray(256 * 1024) for _ in range(4)]
    wait("release")
    return len(data)


worker = threading.Thread(target=worker_hold, name="worker")
worker.start()
grow(20)
kept = marker()
open("grown", "w").close()
print("grew 20 MiB", flush=True)
wait("release")
del hold[10:]
worker.join()
print("done", flush=True)
sys.stderr.write("bye on stderr\\n")
sys.exit(7)
"""

# worker_hold's comprehension: its own frame (3.10: no qualified names), or inlined (3.12+).
WORKER_FRAMES = ("<listcomp>", "worker_hold.<locals>.<listcomp>", "worker_hold")
DEADLINE = 30   # seconds: a bound for a broken build, never reached when it works


def wait_until(predicate, what):
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


class Tmux:
    """A tmux server of the test's own, one window per command."""

    def __init__(self, tmp_path):
        self.socket = "heapscope-test-%d-%d" % (os.getpid(), id(self))
        self.tmp_path = tmp_path

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket] + list(args), check=True, stdout=subprocess.PIPE,
                              env=clean_env()).stdout.decode()

    def start(self, name, command, width=80, height=24):
        """Runs `command` in a fresh terminal; its exit status lands in <name>.status."""
        status = self.tmp_path / (name + ".status")
        shell = "cd %s && %s; echo $? > %s; sleep 600" % (self.tmp_path, command, status)
        self.tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), shell)
        return status

    def screen(self, name):
        return self.tmux("capture-pane", "-p", "-t", name)

    def keys(self, name, *keys):
        self.tmux("send-keys", "-t", name, *keys)

    def wait_screen(self, name, predicate, what):
        return wait_until(lambda: predicate(self.screen(name)), what + " on the screen")

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], stderr=subprocess.DEVNULL)


@pytest.fixture
def tmux(tmp_path):
    session = Tmux(tmp_path)
    yield session
    session.close()


def command_line(*args):
    return " ".join(heapscope_command() + list(args))


def table_rows(screen):
    """(own, total, count, function) of each table row on the screen."""
    rows = []
    for line in screen.splitlines():
        m = re.match(r"\s*([\d.]+ (?:[KMG]iB|B))\s+([\d.]+ (?:[KMG]iB|B))\s+([\d,]+)\s+(\S+)", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3), m.group(4)))
    return rows


def size(text):
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]


def functions(screen):
    return [row[3] for row in table_rows(screen)]


def grow_row(screen):
    return next((row for row in table_rows(screen) if row[3] == "grow"), None)


def test_run_live_in_a_terminal(tmux, tmp_path):
    write(tmp_path / "grow.py", GROW)
    status = tmux.start("live", command_line("run", "--live", "--live-output", "out.txt", "-o", "run.hsc", "grow.py"),
                        width=100, height=30)
    # Each check waits for a screen that passes it: a capture can catch a redraw half done.
    def grown(s):
        return grow_row(s) and grow_row(s)[0] == "20.00 MiB" and "program output: out.txt" in s \
            and "threads: [all]" in s and "worker" in s

    # Sorted by own bytes: grow first, the callers (own 0) far below; by
    # total: grow and the line of <module> that called it (which holds a
    # little more on 3.10, whose frame objects are allocated) at the top.
    def by_own(s):
        owns = [size(row[0]) for row in table_rows(s)]
        return "own*" in s and functions(s)[:1] == ["grow"] and owns == sorted(owns, reverse=True) \
            and "<module>" not in functions(s)[:3]

    def by_total(s):
        rows = table_rows(s)
        totals = [size(row[1]) for row in rows]
        top = {row[3]: row for row in rows[:2]}
        return "total*" in s and totals == sorted(totals, reverse=True) and set(top) == {"grow", "<module>"} \
            and size(top["<module>"][1]) >= size(top["grow"][1]) and size(top["<module>"][0]) < MIB

    def by_count(s):
        counts = [int(row[2].replace(",", "")) for row in table_rows(s)]
        return "count*" in s and counts == sorted(counts, reverse=True) and counts[0] > 20

    def worker_only(s):
        names = functions(s)
        return "[2 worker]" in s and "grow" not in names and set(names) & set(WORKER_FRAMES)

    def hidden(s):
        return "interpreter hidden" in s and "<frozen" not in s and grow_row(s) and grow_row(s)[0] == "20.00 MiB"

    tmux.wait_screen("live", grown, "grow holding 20 MiB")
    tmux.wait_screen("live", by_own, "the own sort")
    tmux.keys("live", "t")
    tmux.wait_screen("live", by_total, "the total sort")
    tmux.keys("live", "n")
    tmux.wait_screen("live", by_count, "the count sort")
    tmux.keys("live", "o")
    tmux.wait_screen("live", by_own, "the own sort again")
    # The thread selector: all -> MainThread -> worker, and back.
    tmux.keys("live", "Right")
    tmux.keys("live", "Right")
    tmux.wait_screen("live", worker_only, "the worker thread selected")
    tmux.keys("live", "Left")
    tmux.keys("live", "Left")
    tmux.wait_screen("live", lambda s: "[all]" in s and "<frozen" in s and grow_row(s), "all threads again")
    # Import-system frames hidden: none left in the table.
    tmux.keys("live", "i")
    tmux.wait_screen("live", hidden, "the hidden frames")

    (tmp_path / "release").touch()
    tmux.wait_screen("live", lambda s: "exited with status 7" in s and grow_row(s) and grow_row(s)[0] == "10.00 MiB", "the program's end")
    assert not status.exists()   # the view stays until q
    tmux.keys("live", "q")
    assert wait_until(lambda: status.exists() and status.read_text().strip(), "heapscope's exit") == "7"
    assert (tmp_path / "out.txt").read_text() == "grew 20 MiB\ndone\nbye on stderr\n"
    assert (tmp_path / "run.hsc").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"   # -o: a normal capture too


@pytest.mark.parametrize("daemon, status_text", [(True, "130"), (False, "137")])
def test_q_stops_the_program_after_asking(tmux, tmp_path, daemon, status_text):
    # A daemon worker: SIGINT ends the program. Otherwise the interpreter waits
    # for the worker at exit, for ever: SIGKILL, 3 s later, ends it.
    write(tmp_path / "grow.py", GROW.replace('name="worker")', 'name="worker", daemon=%r)' % daemon))
    status = tmux.start("stop", command_line("run", "--live", "--live-output", "out.txt", "grow.py"))
    tmux.wait_screen("stop", lambda s: grow_row(s) and grow_row(s)[0] == "20.00 MiB", "grow holding 20 MiB")
    tmux.keys("stop", "q")
    tmux.wait_screen("stop", lambda s: "Stop the program?" in s, "the question")
    tmux.keys("stop", "n")
    tmux.wait_screen("stop", lambda s: "Stop the program?" not in s, "the question gone")
    assert not status.exists()
    tmux.keys("stop", "q")
    tmux.wait_screen("stop", lambda s: "Stop the program?" in s, "the question again")
    tmux.keys("stop", "y")
    # SIGINT: KeyboardInterrupt in wait(); the interpreter then dies of SIGINT (or SIGKILL), and heapscope with it.
    assert wait_until(lambda: status.exists() and status.read_text().strip(), "heapscope's exit") == status_text
    assert "KeyboardInterrupt" in (tmp_path / "out.txt").read_text()


def start_remote(tmp_path, *args):
    proc = subprocess.Popen(heapscope_command() + ["run", "--live-remote"] + list(args) + ["grow.py"], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stderr.readline().decode()
    m = re.search(r"heapscope live (\d+)`", line)
    assert m, line
    return proc, int(m.group(1))


def test_remote_viewers_one_after_the_other(tmux, tmp_path):
    write(tmp_path / "grow.py", GROW)
    proc, port = start_remote(tmp_path)
    first = tmux.start("first", command_line("live", str(port)))
    tmux.wait_screen("first", lambda s: grow_row(s) and grow_row(s)[0] == "20.00 MiB", "grow in the first viewer")
    tmux.keys("first", "q")
    assert wait_until(lambda: first.exists() and first.read_text().strip(), "the first viewer's exit") == "0"
    assert proc.poll() is None   # the program runs on
    # A second viewer is sent the tables again: the same sites, by name.
    second = tmux.start("second", command_line("live", str(port)))
    tmux.wait_screen("second", lambda s: grow_row(s) and grow_row(s)[0] == "20.00 MiB", "grow in the second viewer")
    (tmp_path / "release").touch()
    tmux.wait_screen("second", lambda s: "exited with status 7" in s and grow_row(s) and grow_row(s)[0] == "10.00 MiB", "the end")
    tmux.keys("second", "q")
    assert wait_until(lambda: second.exists() and second.read_text().strip(), "the second viewer's exit") == "0"
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 7
    assert out == b"grew 20 MiB\ndone\n"
    assert err.endswith(b"bye on stderr\n")


# ---- The stream without a terminal ----------------------------------------------

def varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def signed(value):
    return (value >> 1) ^ -(value & 1)


class StreamModel:
    """An independent reading of the capture records (docs/FORMAT.md):
    blocks live now, with the function that allocated them."""

    def __init__(self, data):
        assert data[:8] == MAGIC
        assert not int.from_bytes(data[10:12], "little") & 1   # no native stacks in this test
        pos = 36 + int.from_bytes(data[32:36], "little")
        strings, codes, frames = [None], [None], [None]
        self.live, self.allocs, self.ended = {}, 0, False
        address = previous_frame = 0
        while pos < len(data):
            tag = data[pos]
            pos += 1
            if tag == 0x01:
                n, pos = varint(data, pos)
                strings.append(data[pos:pos + n].decode())
                pos += n
            elif tag == 0x02:
                fields = []
                for _ in range(5):
                    value, pos = varint(data, pos)
                    fields.append(value)
                pos += fields[4]
                codes.append(strings[fields[1]])
            elif tag == 0x03:
                _, pos = varint(data, pos)
                code, pos = varint(data, pos)
                _, pos = varint(data, pos)
                frames.append(codes[code])
            elif tag in (0x04, 0x05, 0x06, 0x07, 0x08, 0x0B):
                count = {0x04: 1, 0x05: 3, 0x06: 2, 0x07: 1, 0x08: 2, 0x0B: 3}[tag]
                for i in range(count):
                    value, pos = varint(data, pos)
                    if tag == 0x08 and i == 0:
                        address += signed(value)
                if tag in (0x07, 0x0B):
                    self.ended = tag == 0x07
                    break
            elif 0x20 <= tag < 0x40 or 0x60 <= tag < 0x80:
                delta, pos = varint(data, pos)
                size, pos = varint(data, pos)
                if tag < 0x40:
                    previous_frame, pos = varint(data, pos)
                address += signed(delta)
                self.live[address] = (size, frames[previous_frame] if previous_frame else None)
                self.allocs += (tag & 0x1F) != 12   # arenas are not counted (FORMAT.md, "What the figures mean")
            elif 0x40 <= tag < 0x60:
                delta, pos = varint(data, pos)
                address += signed(delta)
                self.live.pop(address, None)
            else:
                raise AssertionError("tag %#x at %d" % (tag, pos - 1))

    def blocks(self, function, at_least=0):
        return [size for size, name in self.live.values() if name == function and size >= at_least]


class StreamClient:
    """Reads the live port: the greeting, then frames."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        assert self.read(len(GREETING)) == GREETING
        self.records = b""
        self.exit = None

    def read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def frame(self):
        kind, length = self.read(1)[0], int.from_bytes(self.read(4), "little")
        payload = self.read(length)
        if kind == 1:
            self.records += payload
        else:
            assert kind == 2 and length == 8
            self.exit = (int.from_bytes(payload[:4], "little", signed=True),
                         int.from_bytes(payload[4:], "little", signed=True))
        return kind


def test_stream_figures_match_the_script(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    # Uncompressed: the stream is then the records themselves, for this client to read.
    proc, port = start_remote(tmp_path, "--no-compress", "-o", "run.hsc")
    client = StreamClient(port)
    # Up to marker(): after grow's twenty blocks, before anything is freed.
    while not (client.records and StreamModel(client.records).blocks("marker", 54321)):
        client.frame()
    model = StreamModel(client.records)
    assert len(model.blocks("grow", MIB)) == 20
    assert all(MIB < size <= MIB + 64 for size in model.blocks("grow", MIB))   # bytes(1 MiB): its header on top
    # bytearray(256 KiB): its buffer has room for a NUL. The comprehension's frame is named by version.
    held = sum(sum(model.blocks(name, 256 * 1024)) for name in WORKER_FRAMES)
    assert held == 4 * (256 * 1024 + 1)
    # A second client at the same moment gets the stream from its start, tables included.
    late = StreamClient(port)
    while len(late.records) < len(client.records):
        late.frame()
    assert late.records[:len(client.records)] == client.records
    late.sock.close()   # leaving early does not disturb the program or the others

    (tmp_path / "release").touch()
    while client.frame() != 2:
        pass
    assert client.exit == (0, 7)
    model = StreamModel(client.records)
    assert model.ended
    assert len(model.blocks("grow", MIB)) == 10
    out, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 7 and out == b"grew 20 MiB\ndone\n"
    # -o wrote a normal capture of the same records.
    stats = hs.stats_json(tmp_path / "run.hsc")
    assert not stats["truncated"]
    assert stats["total_allocations"] == model.allocs
    assert stats["peak_bytes"] >= 21 * MIB


def test_a_viewer_that_reads_nothing_holds_up_nothing(tmp_path):
    # Three million allocations, uncompressed: megabytes more than a socket holds.
    write(tmp_path / "busy.py", "keep = [str(i) for i in range(3_000_000)]\nprint('done', flush=True)\n")
    proc = subprocess.Popen(heapscope_command() + ["run", "--live-remote", "--no-compress", "-o", "run.hsc", "busy.py"], cwd=tmp_path,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    port = int(re.search(r"heapscope live (\d+)`", proc.stderr.readline().decode()).group(1))
    stuck = StreamClient(port)   # the first viewer: greeted, then never reads again
    reader = StreamClient(port)
    while reader.frame() != 2:
        pass
    out, _ = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0 and out == b"done\n"
    # The whole run reached the viewer that reads (the capture, byte for
    # byte), while the other one blocked its own sender only.
    capture = (tmp_path / "run.hsc").read_bytes()
    assert reader.exit == (0, 0) and reader.records == capture and len(capture) > 8_000_000
    stuck.sock.close()


# ---- Bad input ------------------------------------------------------------------

def one_error_line(proc, text):
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and text in lines[0], lines


def test_live_needs_a_terminal(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    one_error_line(hs("run", "--live", "grow.py"), "--live needs a terminal")
    assert not (tmp_path / "grown").exists()


def test_live_and_live_remote_together(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    one_error_line(hs("run", "--live", "--live-remote", "grow.py"), "--live and --live-remote cannot be used together")
    one_error_line(hs("run", "--live-port", "5000", "grow.py"), "--live-port works with --live-remote")


def test_port_in_use(hs, tmp_path):
    write(tmp_path / "grow.py", GROW)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_error_line(hs("run", "--live-remote", "--live-port", str(port), "grow.py"), "already in use")
    assert not (tmp_path / "grown").exists()


def test_remote_listens_on_loopback_only(tmp_path):
    write(tmp_path / "grow.py", GROW)
    proc, port = start_remote(tmp_path)
    try:
        listening = Path("/proc/net/tcp").read_text()
        local = {line.split()[1] for line in listening.splitlines()[1:] if line.split()[3] == "0A"}
        assert "0100007F:%04X" % port in local
        assert "00000000:%04X" % port not in local
    finally:
        proc.kill()
        proc.communicate()


def in_a_pty(args, cwd):
    """Runs `args` with a terminal as stdin and stdout (stderr piped)."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(args, cwd=cwd, env=clean_env(), stdin=terminal, stdout=terminal, stderr=subprocess.PIPE,
                              timeout=DEADLINE)
    finally:
        os.close(terminal)
        os.close(controller)
    return proc


def test_viewer_where_nothing_listens(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]   # bound, never listening: connections are refused
        one_error_line(in_a_pty(heapscope_command() + ["live", str(port)], tmp_path), "nothing listens on 127.0.0.1:%d" % port)


@pytest.mark.parametrize("answer", [None, b"HTTP/1.1 400 Bad Request\r\n\r\n"])
def test_viewer_where_something_else_answers(tmp_path, answer):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []

    def serve():
        conn, _ = server.accept()
        held.append(conn)
        if answer:
            conn.sendall(answer)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        started = time.monotonic()
        proc = in_a_pty(heapscope_command() + ["live", str(server.getsockname()[1])], tmp_path)
        one_error_line(proc, "is not a heapscope live port")
        assert time.monotonic() - started < DEADLINE
    finally:
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_viewer_bad_port(tmp_path):
    proc = in_a_pty(heapscope_command() + ["live", "70000"], tmp_path)
    assert proc.returncode != 0 and b"between 1 and 65535" in proc.stderr
