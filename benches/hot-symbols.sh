#!/usr/bin/env bash
# Regenerates link/hot-symbols.txt: the functions a TCP pipe session runs (both roles, start to
# end), which build.rs hands to the linker (lld's --symbol-ordering-file) so that they sit
# together at the start of the binary's code.
#
# Why: the kernel maps a binary's code 64 KiB around every page it faults in ("fault-around").
# Since iroh came in, the code a session runs is spread over 15 MB of text, and those windows
# made 4.5 MB of it resident in every pipe process; grouped, about a quarter of that.
#
#   benches/hot-symbols.sh        # needs valgrind (installed from Debian when run as root)
#
# Rerun it after upgrading Rust or dependencies (symbol names carry their hashes); a stale list
# costs memory, nothing else: names the linker does not find are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "missing: valgrind (apt-get install valgrind)" >&2
        exit 1
    fi
fi

# (After a `cargo bench`, target/release/schat is the bench profile's build, with other symbol
# names; cargo links the release build back only when the file is missing.)
rm -f target/release/schat
cargo build --release --quiet
SCHAT=$PWD/target/release/schat
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
"$SCHAT" --home "$work/a" keygen >/dev/null 2>&1
"$SCHAT" --home "$work/b" keygen >/dev/null 2>&1
FP_A=$("$SCHAT" --home "$work/a" fingerprint --raw)
FP_B=$("$SCHAT" --home "$work/b" fingerprint --raw)
head -c 4000000 /dev/urandom >"$work/data"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listening() { # until $1 (stderr of a listener) says it listens
    for _ in $(seq 400); do grep -q "listening on" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "the listener did not start: $(cat "$1")" >&2
    return 1
}
traced() { valgrind --tool=callgrind --demangle=no --callgrind-out-file="$1" "${@:2}"; }

# First a pipe over iroh between the same two homes, untraced: it leaves in known_peers the
# kind of entries (iroh endpoints, addresses) a real user's file has, and reading those is part
# of every later session. Traced without them, a TCP pipe run after an iroh one faulted in
# ~0.6 MB of code the list had missed.
"$SCHAT" --home "$work/r" relay 127.0.0.1:0 --insecure-http 2>"$work/relay.err" &
relay=$!
RELAY=""
for _ in $(seq 200); do
    RELAY=$(sed -n 's/.*use --relay \(http:[^ ]*\).*/\1/p' "$work/relay.err")
    [ -n "$RELAY" ] && break
    sleep 0.05
done
[ -n "$RELAY" ] || { echo "the relay did not start: $(cat "$work/relay.err")" >&2; exit 1; }
"$SCHAT" --home "$work/b" listen 127.0.0.1:0 --pipe --once --peer "$FP_A" --p2p --relay "$RELAY" \
    --p2p-bind 127.0.0.1:0 --no-portmap <"$work/data" >/dev/null 2>"$work/iroh.err" &
ticket=""
for _ in $(seq 400); do
    ticket=$(grep -E '^schat:[a-z0-9]+$' "$work/iroh.err" | head -1 || true)
    [ -n "$ticket" ] && break
    sleep 0.05
done
[ -n "$ticket" ] || { echo "no ticket from the iroh listener: $(cat "$work/iroh.err")" >&2; exit 1; }
"$SCHAT" --home "$work/a" dial "$ticket" --via iroh --pipe --peer "$FP_B" --p2p-bind 127.0.0.1:0 \
    --no-portmap <"$work/data" >/dev/null 2>/dev/null
wait %2 2>/dev/null || true
kill "$relay" 2>/dev/null || true
wait "$relay" 2>/dev/null || true

# Each role once under callgrind, the other side running natively; data both ways.
for role in listen dial; do
    port=$(free_port)
    listen=("$SCHAT" --home "$work/b" listen 127.0.0.1:"$port" --pipe --once --peer "$FP_A")
    dial=("$SCHAT" --home "$work/a" dial 127.0.0.1:"$port" --pipe --peer "$FP_B")
    if [ $role = listen ]; then
        traced "$work/cg.$role" "${listen[@]}" <"$work/data" >/dev/null 2>"$work/l.err" &
        wait_listening "$work/l.err"
        "${dial[@]}" <"$work/data" >/dev/null 2>/dev/null
    else
        "${listen[@]}" <"$work/data" >/dev/null 2>"$work/l.err" &
        wait_listening "$work/l.err"
        traced "$work/cg.$role" "${dial[@]}" <"$work/data" >/dev/null 2>/dev/null
    fi
    wait
done

python3 - "$SCHAT" "$work/cg.listen" "$work/cg.dial" >link/hot-symbols.txt <<'PY'
import re, subprocess, sys
binary, traces = sys.argv[1], sys.argv[2:]
defined = set()
for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split(" ", 2)
    if len(parts) == 3 and parts[1] in "tTwW":
        defined.add(parts[2])
order, seen = [], set()
for trace in traces:
    for line in open(trace):
        # callgrind names a function in full the first time: "fn=(id) name" or "cfn=(id) name"
        m = re.match(r"c?fn=\(\d+\) (.+)$", line.rstrip("\n"))
        if m and m.group(1) in defined and m.group(1) not in seen:
            seen.add(m.group(1))
            order.append(m.group(1))
# ring's assembly entry points pick their variant by CPU at run time, and valgrind hides
# AVX-512 and VAES from the traced program: the AEAD variants this CPU really runs (AES-GCM
# with VAES, ChaCha20-Poly1305 with AVX2) may be missing from the trace. All of them go in.
for name in sorted(defined):
    if re.match(r"ring_core_.*(aes|gcm|ghash|chacha|poly1305)", name) and name not in seen:
        seen.add(name)
        order.append(name)
print("# Functions a TCP pipe session runs, in first-call order: the linker puts them first.")
print("# Generated by benches/hot-symbols.sh; see build.rs. Do not edit by hand.")
print("\n".join(order))
print(f"{len(order)} functions", file=sys.stderr)
PY
