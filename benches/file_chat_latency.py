#!/usr/bin/env python3
"""A chat line's delay while a file moves the same way (docs/files.md: "lines you type during
a transfer go first").

The dialer sends a FILE_MIB file (default 1024) to a listener with --accept-files and, while
it moves, types a line every 20 ms carrying the time it was typed; the listener prints each
line it receives, and this script notes when. Both run on this machine, so one clock serves.
Prints the delays' median, p99 and maximum, and how many lines were typed while the file was
moving. Needs a release build (cargo build --release).

    benches/file_chat_latency.py [FILE_MIB]
"""
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHAT = os.path.join(ROOT, "target", "release", "schat")
MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 1024


def free_port():
    while True:
        port = random.randint(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            pass
        finally:
            s.close()


def main():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as work:
        a, b, out = (os.path.join(work, n) for n in ("a", "b", "out"))
        os.mkdir(out)
        for home in (a, b):
            subprocess.run([SCHAT, "--home", home, "keygen", "--no-passphrase"], check=True,
                           capture_output=True)
        fp = lambda home: subprocess.check_output(
            [SCHAT, "--home", home, "fingerprint", "--raw"]).decode().strip()
        fa, fb = fp(a), fp(b)
        src = os.path.join(work, "src.bin")
        with open(src, "wb") as f:
            for _ in range(MIB):
                f.write(os.urandom(1 << 20))
        port = free_port()
        listener = subprocess.Popen(
            [SCHAT, "--home", b, "listen", f"127.0.0.1:{port}", "--once", "--peer", fa,
             "--accept-files", out],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for line in listener.stderr:
            if b"listening on" in line:
                break
        threading.Thread(target=lambda: [None for _ in listener.stderr], daemon=True).start()
        dialer = subprocess.Popen(
            [SCHAT, "--home", a, "dial", f"127.0.0.1:{port}", "--peer", fb, "--send", src],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        moving = threading.Event()
        done = threading.Event()

        def watch():
            for line in dialer.stderr:
                if b"accepted; sending" in line:
                    moving.set()
                if b"delivered" in line:
                    done.set()
            done.set()
        threading.Thread(target=watch, daemon=True).start()

        typed = 0

        def type_lines():
            nonlocal typed
            moving.wait()
            while not done.is_set():
                dialer.stdin.write(f"t={time.monotonic_ns()}\n".encode())
                dialer.stdin.flush()
                typed += 1
                time.sleep(0.02)
        typer = threading.Thread(target=type_lines, daemon=True)
        typer.start()
        delays = []
        for line in listener.stdout:
            text = line.decode(errors="replace").strip()
            if "t=" in text:
                sent = int(text.rsplit("t=", 1)[1])
                delays.append((time.monotonic_ns() - sent) / 1e6)
            if done.is_set() and len(delays) >= typed:
                break
        dialer.wait(timeout=600)
        listener.wait(timeout=60)
    if not delays:
        print("no line arrived while the file moved")
        sys.exit(1)
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"{MIB} MiB file; {len(delays)} chat lines typed while it moved (one per 20 ms)")
    print(f"delay from typed to shown: median {statistics.median(delays):.1f} ms, "
          f"p99 {p99:.1f} ms, max {delays[-1]:.1f} ms")


if __name__ == "__main__":
    main()
