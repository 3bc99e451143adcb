#!/usr/bin/env python3
"""A file between two members of a room (PROTOCOL.md §4.14, "Files between members") against
the same file from the host to a member, in one run, taking turns.

- host → member: `listen --send FILE` to a member with `--accept-files`: one connection.
- member → member: both members dialled into a `--relay-only` host; the sender types
  `/send FILE` once its end-to-end session with the receiver is up. The bytes are sealed
  twice (for the member, then for the connection) and pass the host's loop, which reads none
  of them.

Both are timed the same way, at the receiver: from its `file_offered` event to its
`file_done` (offer, acceptance, every byte written, the hash checked). The sender's hashing
before the offer is outside both. Prints MiB/s (median of REPS rounds) and the ratio. Needs
a release build (cargo build --release).

    benches/member_files.py [FILE_MIB] [REPS]
"""
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHAT = os.path.join(ROOT, "target", "release", "schat")
MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 512
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def keygen(home):
    subprocess.run([SCHAT, "--home", home, "keygen", "--no-passphrase"], check=True,
                   capture_output=True)


def listen(home, *extra):
    """A listener on port 0: the process and its port."""
    p = subprocess.Popen([SCHAT, "--home", home, "listen", "127.0.0.1:0", "--allow", "anyone",
                          *extra], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    for line in p.stderr:
        if b"listening on" in line:
            port = int(line.decode().split("listening on ")[1].split()[0].rsplit(":", 1)[1])
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, port
    raise SystemExit("the listener did not start")


def dial(home, port, *extra, stdin=subprocess.DEVNULL):
    return subprocess.Popen([SCHAT, "--home", home, "dial", f"127.0.0.1:{port}", "--trust",
                             "accept-new", "--json", *extra], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def offered_to_done(receiver):
    """Seconds from the receiver's file_offered to its file_done."""
    times = {}
    for line in receiver.stdout:
        event = json.loads(line)
        if event["event"] in ("file_offered", "file_done", "file_failed"):
            times[event["event"]] = datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
        if event["event"] == "file_failed":
            raise SystemExit(f"the file failed: {event}")
        if event["event"] == "file_done":
            return (times["file_done"] - times["file_offered"]).total_seconds()
    raise SystemExit("the receiver ended before the file was done")


def stop(*procs):
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


def host_to_member(work, src):
    out = tempfile.mkdtemp(dir=work)
    host, port = listen(f"{work}/h", "--send", src)
    receiver = dial(f"{work}/r", port, "--accept-files", out)
    seconds = offered_to_done(receiver)
    stop(host, receiver)
    return seconds


def member_to_member(work, src):
    out = tempfile.mkdtemp(dir=work)
    host, port = listen(f"{work}/h", "--relay-only")
    receiver = dial(f"{work}/r", port, "--accept-files", out)
    sender = dial(f"{work}/s", port, stdin=subprocess.PIPE)
    for line in sender.stderr:
        if b"end to end with" in line:
            break
    threading.Thread(target=lambda: [None for _ in sender.stderr], daemon=True).start()
    threading.Thread(target=lambda: [None for _ in sender.stdout], daemon=True).start()
    sender.stdin.write(f"/send {src}\n".encode())
    sender.stdin.flush()
    seconds = offered_to_done(receiver)
    stop(sender, receiver, host)
    return seconds


def main():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as work:
        for home in ("h", "r", "s"):
            keygen(f"{work}/{home}")
        src = os.path.join(work, "src.bin")
        with open(src, "wb") as f:
            for _ in range(MIB):
                f.write(os.urandom(1 << 20))
        runs = {"host → member": [], "member → member (relay-only host)": []}
        for round in range(REPS):
            for name, run in zip(runs, (host_to_member, member_to_member)):
                print(f"round {round + 1}/{REPS}: {name}", file=sys.stderr)
                runs[name].append(MIB / run(work, src))
        direct = statistics.median(runs["host → member"])
        print(f"| {MIB} MiB, offered → checked at the receiver | MiB/s | × host → member |")
        print("|---|---|---|")
        for name, rates in runs.items():
            rate = statistics.median(rates)
            print(f"| {name} | {rate:.0f} | {rate / direct:.2f} |")


if __name__ == "__main__":
    main()
