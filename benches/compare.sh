#!/usr/bin/env bash
# Side-by-side, in one run, on loopback: push the same bytes through plain TCP, schat --pipe,
# openssl s_server/s_client (TLS 1.3) and socat OPENSSL, and print MiB/s with ratios to plain
# TCP and to schat's in-memory seal rate, plus peak RSS of each process; then schat's 64-byte
# round trips and handshake rates (benches/loopback.rs). Medians of REPS runs, the tools taking
# turns in each round so drift on a shared machine hits all of them alike.
#
# Then the same schat pipe over iroh (a local `schat relay`, QUIC on loopback) against schat
# over TCP, IROH_MIB each (default 256), taking turns the same way.
#
# Then a file of FILE_MIB (default SIZE_MIB) handed over three ways, each writing it to a file
# on the same tmpfs: `schat --pipe` (stdin to stdout), `schat dial --send` to
# `listen --accept-files` (offered, hashed, checked), and magic-wormhole with its mailbox server
# and transit relay run on loopback (a Python venv, installed from PyPI on first use;
# WORMHOLE=0 leaves it out).
#
#   benches/compare.sh                 # 1 GiB, 5 rounds
#   SIZE_MIB=256 REPS=3 benches/compare.sh
#   PIN=0 benches/compare.sh          # let the kernel place the processes
#   ONLY=files FILE_MIB=1024 benches/compare.sh   # only the file section
#
# Needs openssl and socat (installed from Debian packages when missing and running as root),
# and GNU time (/usr/bin/time) for peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
FILE_MIB=${FILE_MIB:-$SIZE_MIB}
IROH_MIB=${IROH_MIB:-256}
REPS=${REPS:-5}
SIZE=$((SIZE_MIB * 1024 * 1024))
BUF=131072 # socat buffer: its 8 KiB default would make plain TCP the bottleneck

need=()
command -v socat >/dev/null || need+=(socat)
[ -x /usr/bin/time ] || need+=(time)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${need[*]} (Debian packages)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing: ${need[*]}; install them (e.g. apt-get install ${need[*]})" >&2
        exit 1
    fi
fi

# Placement: on a 2-core machine, where the kernel puts sender, receiver and `head` changes
# the figures by a third from run to run. Every tool gets the same one: the data source and the
# sender on CPU 0, the receiver on the last CPU (PIN=0 leaves placement to the kernel).
SEND_CPU="" RECV_CPU="" placement="unpinned"
if [ "${PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SEND_CPU="taskset -c 0" RECV_CPU="taskset -c $(($(nproc) - 1))"
    placement="source and sender on CPU 0, receiver on CPU $(($(nproc) - 1))"
fi

echo "building (release)..." >&2
# (Removed first: after a `cargo bench`, target/release/schat is the bench profile's build,
# and cargo puts the release build's back only when the file is missing.)
rm -f target/release/schat
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
# A copy of the release binary as users build it: the `cargo bench` runs below rebuild
# target/release/schat under the bench profile, which is not the binary users run.
cp target/release/schat "$work/schat-release"
# The summaries' shared part (Python, imported by both).
cat >"$work/runs.py" <<'PY'
import sys


def valid_runs(path):
    # A run whose line is not 7 numbers (a tool that failed, GNU time's own messages) is
    # reported and left out of the medians.
    runs = []
    for line in open(path, "rb"):
        try:
            fields = line.decode().split()
            if len(fields) != 7:
                raise ValueError
            [float(f) for f in fields]
            runs.append(fields)
        except (ValueError, UnicodeDecodeError):
            print(f"left out a failed run ({path.rsplit('/', 1)[-1]}): {line!r}", file=sys.stderr)
    return runs
PY
SCHAT=$work/schat-release

"$SCHAT" --home "$work/a" keygen >/dev/null 2>&1
"$SCHAT" --home "$work/b" keygen >/dev/null 2>&1
FP_B=$("$SCHAT" --home "$work/b" fingerprint --raw)
FP_A=$("$SCHAT" --home "$work/a" fingerprint --raw)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# A free port below the ephemeral range (TIME_WAIT sockets from earlier runs live up there).
free_port() {
    python3 -c 'import random, socket
while True:
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()'
}

wait_port() { # wait until something listens on port $1 (without connecting: that would use
    # up a single-connection listener); /proc/net/tcp lists listening sockets with state 0A
    local hex
    hex=$(printf '%04X' "$1")
    for _ in $(seq 200); do
        grep -q ":$hex [0-9A-F:]* 0A " /proc/net/tcp /proc/net/tcp6 && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    return 1
}

now() { date +%s.%N; }

# run NAME: one transfer of SIZE bytes with the tool NAME; appends "mibs rss_sender rss_receiver"
# to $work/NAME.
run() {
    local name=$1 port start end
    port=$(free_port)
    case $name in
    plain-tcp)
        $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" socat -b $BUF -u TCP-LISTEN:"$port",reuseaddr OPEN:/dev/null &
        wait_port "$port"
        start=$(now)
        $SEND_CPU head -c $SIZE /dev/zero | $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" socat -b $BUF -u STDIN TCP:127.0.0.1:"$port"
        ;;
    schat | schat-chacha20)
        # schat-chacha20: both sides without the AES-256-GCM switch (PROTOCOL.md §4.9), as on
        # a CPU without AES instructions.
        local no_aes=0
        [ "$name" = schat-chacha20 ] && no_aes=1
        SCHAT_NO_AES=$no_aes $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" "$SCHAT" --home "$work/b" listen 127.0.0.1:"$port" \
            --pipe --quiet --peer "$FP_A" </dev/null >/dev/null 2>"$work/schat.err" &
        wait_port "$port"
        start=$(now)
        $SEND_CPU head -c $SIZE /dev/zero | SCHAT_NO_AES=$no_aes $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" "$SCHAT" --home "$work/a" \
            dial 127.0.0.1:"$port" --pipe --quiet --peer "$FP_B" >/dev/null 2>>"$work/schat.err"
        ;;
    openssl-aes-gcm | openssl-chacha20)
        local suite=TLS_AES_256_GCM_SHA384
        [ "$name" = openssl-chacha20 ] && suite=TLS_CHACHA20_POLY1305_SHA256
        # s_server exits when its stdin ends: give it one that does not (a process substitution,
        # so that the background job is s_server alone and `wait` returns when it exits).
        $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" openssl s_server -quiet -naccept 1 \
            -accept "$port" -cert "$work/cert.pem" -key "$work/key.pem" -tls1_3 \
            -ciphersuites "$suite" >/dev/null 2>&1 < <(sleep 3600) &
        wait_port "$port"
        start=$(now)
        $SEND_CPU head -c $SIZE /dev/zero | $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" openssl s_client -quiet \
            -no_ign_eof -connect 127.0.0.1:"$port" -tls1_3 -ciphersuites "$suite" >/dev/null 2>&1
        ;;
    schat-iroh)
        # The listener prints its ticket; the dialer uses iroh only (on loopback TCP would win).
        : >"$work/iroh.err"
        $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" "$SCHAT" --home "$work/b" listen 127.0.0.1:"$port" \
            --pipe --quiet --peer "$FP_A" --p2p --relay "$RELAY" --p2p-bind 127.0.0.1:0 \
            --no-portmap </dev/null >/dev/null 2>"$work/iroh.err" &
        local ticket=""
        for _ in $(seq 200); do
            ticket=$(grep -E '^schat:[a-z0-9]+$' "$work/iroh.err" | head -1 || true)
            [ -n "$ticket" ] && break
            sleep 0.05
        done
        start=$(now)
        $SEND_CPU head -c $SIZE /dev/zero | $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" "$SCHAT" --home "$work/a" \
            dial "$ticket" --via iroh --pipe --quiet --p2p-bind 127.0.0.1:0 --no-portmap \
            >/dev/null 2>>"$work/iroh.err"
        ;;
    socat-openssl)
        $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" socat -b $BUF -u OPENSSL-LISTEN:"$port",reuseaddr,cert="$work/cert.pem",key="$work/key.pem",verify=0 OPEN:/dev/null 2>/dev/null &
        wait_port "$port"
        start=$(now)
        $SEND_CPU head -c $SIZE /dev/zero | $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" socat -b $BUF -u STDIN OPENSSL:127.0.0.1:"$port",verify=0 2>/dev/null
        ;;
    esac
    wait %% 2>/dev/null || true # the receiver, once it has everything
    end=$(now)
    pkill -f "sleep 3600" 2>/dev/null || true
    # One line per run: MiB/s, then "peak-RSS-KiB user-s sys-s" of the sender, then of the
    # receiver (GNU time, per process).
    python3 -c "print('%.1f' % ($SIZE_MIB / ($end - $start)), end=' ')" >>"$work/$name$SECTION"
    echo "$(tail -1 "$work/rss.s") $(tail -1 "$work/rss.r")" >>"$work/$name$SECTION"
}

if [ "${ONLY:-}" != files ]; then
echo "measuring schat's in-memory seal rate..." >&2
seal_out=$(cargo bench --quiet --bench loopback -- --seal-only 2>/dev/null)
seal=$(sed -n 's/^seal_mib_s=//p' <<<"$seal_out")
cipher=$(sed -n 's/^transport_cipher=//p' <<<"$seal_out")

SECTION=""
tools=(plain-tcp schat schat-chacha20 openssl-aes-gcm openssl-chacha20 socat-openssl)
for round in $(seq "$REPS"); do
    for t in "${tools[@]}"; do
        echo "round $round/$REPS: $t" >&2
        run "$t"
    done
done

echo
echo "## ${SIZE_MIB} MiB through a pipe over loopback: median of $REPS rounds ($(nproc) cores; $placement)"
echo
python3 - "$work" "$seal" "$SIZE_MIB" "${tools[@]}" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from runs import valid_runs
work, seal, size_mib, tools = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
gib = size_mib / 1024
rows = {}
for t in tools:
    runs = valid_runs(f"{work}/{t}")
    # run: mibs, rss_s, user_s, sys_s, rss_r, user_r, sys_r
    rows[t] = dict(
        mibs=statistics.median(float(r[0]) for r in runs),
        rss_s=max(int(r[1]) for r in runs), rss_r=max(int(r[4]) for r in runs),
        cpu_s=statistics.median((float(r[2]) + float(r[3])) / gib for r in runs),
        cpu_r=statistics.median((float(r[5]) + float(r[6])) / gib for r in runs),
        cpu=statistics.median((float(r[2]) + float(r[3]) + float(r[5]) + float(r[6])) / gib for r in runs),
    )
plain, tls = rows["plain-tcp"], rows["socat-openssl"]
print("| path | MiB/s | × plain TCP | × socat OPENSSL | × schat in-memory seal | CPU core-s/GiB sender + receiver = total | CPU × socat OPENSSL | peak RSS sender / receiver |")
print("|---|---|---|---|---|---|---|---|")
for t in tools:
    r = rows[t]
    print(f"| {t} | {r['mibs']:.0f} | {r['mibs']/plain['mibs']:.2f} | {r['mibs']/tls['mibs']:.2f} | {r['mibs']/seal:.2f} "
          f"| {r['cpu_s']:.2f} + {r['cpu_r']:.2f} = {r['cpu']:.2f} | {r['cpu']/tls['cpu']:.2f} "
          f"| {r['rss_s']/1024:.1f} MB / {r['rss_r']/1024:.1f} MB |")
print(f"| (schat seal, in memory, one core) | {seal:.0f} | | | 1.00 | | | |")
s = rows["schat"]
print(f"\nschat vs socat OPENSSL (TLS 1.3, AES-256-GCM): throughput {s['mibs']/tls['mibs']:.2f}×, "
      f"CPU per GiB {s['cpu']/tls['cpu']:.2f}× (medians of each; CPU = user + sys of both processes)")
c = rows["schat-chacha20"]
print(f"schat-chacha20 (SCHAT_NO_AES=1 on both sides) vs socat OPENSSL: throughput {c['mibs']/tls['mibs']:.2f}×, "
      f"CPU per GiB {c['cpu']/tls['cpu']:.2f}×")
PY
echo "schat's transport cipher on this machine: $cipher (the in-memory seal rate above is with it)"
echo
echo "## Latency and handshakes (benches/loopback.rs)"
echo
cargo bench --quiet --bench loopback 2>/dev/null | sed -n '/^|/p'

echo
echo "## schat --pipe over iroh vs over TCP: ${IROH_MIB} MiB, median of $REPS rounds ($placement)"
echo
"$SCHAT" --home "$work/r" relay 127.0.0.1:0 --insecure-http 2>"$work/relay.err" &
for _ in $(seq 100); do
    RELAY=$(sed -n 's/.*use --relay \(http:[^ ]*\).*/\1/p' "$work/relay.err")
    [ -n "$RELAY" ] && break
    sleep 0.05
done
SECTION=-iroh
SIZE_MIB=$IROH_MIB
SIZE=$((SIZE_MIB * 1024 * 1024))
for round in $(seq "$REPS"); do
    for t in schat schat-iroh; do
        echo "round $round/$REPS: $t ($IROH_MIB MiB)" >&2
        run "$t"
    done
done
python3 - "$work" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from runs import valid_runs
work = sys.argv[1]
med = {}
for t in ("schat", "schat-iroh"):
    runs = valid_runs(f"{work}/{t}-iroh")
    med[t] = (statistics.median(float(r[0]) for r in runs),
              max(int(r[1]) for r in runs), max(int(r[4]) for r in runs))
print("| path | MiB/s | × schat over TCP | peak RSS sender / receiver |")
print("|---|---|---|---|")
for t, label in (("schat", "schat over TCP"), ("schat-iroh", "schat over iroh (QUIC, direct on loopback)")):
    mibs, rs, rr = med[t]
    print(f"| {label} | {mibs:.0f} | {mibs/med['schat'][0]:.2f} | {rs/1024:.1f} MB / {rr/1024:.1f} MB |")
PY
echo
echo "## Dial to first message, over TCP and through an iroh relay (benches/p2p.rs)"
echo
cargo bench --quiet --bench p2p 2>/dev/null | sed -n '/^|/p'

fi

echo
echo "## A ${FILE_MIB} MiB file, written to a file at the other end: schat --pipe, schat /send, magic-wormhole ($placement)"
echo
# Source and destinations on tmpfs when there is one: the disk is not what is measured.
files=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo "$work")/schat-files.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work" "$files"' EXIT
head -c $((FILE_MIB * 1024 * 1024)) /dev/urandom >"$files/src.bin"
WH_BIN=""
if [ "${WORMHOLE:-1}" = 1 ]; then
    wh="${WORMHOLE_VENV:-$HOME/.cache/schat-bench-wormhole}"
    if [ ! -x "$wh/bin/wormhole" ]; then
        echo "installing magic-wormhole, its mailbox server and transit relay into $wh" >&2
        python3 -m venv "$wh" && "$wh/bin/pip" install -q magic-wormhole \
            magic-wormhole-mailbox-server magic-wormhole-transit-relay >&2 || true
    fi
    if [ -x "$wh/bin/wormhole" ]; then
        WH_BIN=$wh/bin
        mbox=$(free_port) transit=$(free_port)
        (cd "$files" && "$WH_BIN/twist" wormhole-mailbox --port=tcp:$mbox:interface=127.0.0.1 >/dev/null 2>&1) &
        (cd "$files" && "$WH_BIN/twist" transitrelay --port=tcp:$transit:interface=127.0.0.1 >/dev/null 2>&1) &
        wait_port "$mbox" && wait_port "$transit"
    else
        echo "magic-wormhole not available: left out" >&2
    fi
fi

# file_run NAME: one transfer of src.bin; appends "mibs rss_sender user sys rss_receiver user sys".
file_run() {
    local name=$1 port start end
    rm -rf "$files/out" && mkdir "$files/out"
    port=$(free_port)
    case $name in
    schat-pipe)
        $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" "$SCHAT" --home "$work/b" listen 127.0.0.1:"$port" \
            --pipe --quiet --peer "$FP_A" </dev/null >"$files/out/src.bin" 2>"$work/files.err" &
        wait_port "$port"
        start=$(now)
        $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" "$SCHAT" --home "$work/a" \
            dial 127.0.0.1:"$port" --pipe --quiet --peer "$FP_B" <"$files/src.bin" >/dev/null 2>>"$work/files.err"
        ;;
    schat-send)
        $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" "$SCHAT" --home "$work/b" listen 127.0.0.1:"$port" \
            --once --peer "$FP_A" --accept-files "$files/out" </dev/null >/dev/null 2>"$work/files.err" &
        wait_port "$port"
        start=$(now)
        $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" "$SCHAT" --home "$work/a" \
            dial 127.0.0.1:"$port" --peer "$FP_B" --send "$files/src.bin" </dev/null >/dev/null 2>>"$work/files.err"
        ;;
    magic-wormhole)
        local W=("$WH_BIN/wormhole" --relay-url "ws://127.0.0.1:$mbox/v1" --transit-helper "tcp:127.0.0.1:$transit")
        local code="7-schat-bench-$RANDOM"
        (cd "$files/out" && $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.r" "${W[@]}" receive --accept-file "$code" >/dev/null 2>&1) &
        start=$(now)
        $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/rss.s" "${W[@]}" send --code "$code" "$files/src.bin" >/dev/null 2>&1
        ;;
    esac
    wait %% 2>/dev/null || true
    end=$(now)
    if ! cmp -s "$files/src.bin" "$files/out/src.bin"; then
        echo "$name: the file did not arrive whole" >&2
        echo "failed" >>"$work/$name-file"
        return
    fi
    python3 -c "print('%.1f' % ($FILE_MIB / ($end - $start)), end=' ')" >>"$work/$name-file"
    echo "$(tail -1 "$work/rss.s") $(tail -1 "$work/rss.r")" >>"$work/$name-file"
}

ftools=(schat-pipe schat-send)
[ -n "$WH_BIN" ] && ftools+=(magic-wormhole)
for round in $(seq "$REPS"); do
    for t in "${ftools[@]}"; do
        echo "round $round/$REPS: $t ($FILE_MIB MiB file)" >&2
        file_run "$t"
    done
done
python3 - "$work" "$FILE_MIB" "${ftools[@]}" <<'PY'
import statistics, sys
sys.path.insert(0, sys.argv[1])
from runs import valid_runs
work, size_mib, tools = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
gib = size_mib / 1024
rows = {}
for t in tools:
    runs = valid_runs(f"{work}/{t}-file")
    rows[t] = dict(
        mibs=statistics.median(float(r[0]) for r in runs),
        rss_s=max(int(r[1]) for r in runs), rss_r=max(int(r[4]) for r in runs),
        cpu=statistics.median((float(r[2]) + float(r[3]) + float(r[5]) + float(r[6])) / gib for r in runs),
    )
pipe = rows["schat-pipe"]
print("| way | MiB/s | × schat --pipe | × magic-wormhole | CPU core-s/GiB, both sides | peak RSS sender / receiver |")
print("|---|---|---|---|---|---|")
wh = rows.get("magic-wormhole")
for t in tools:
    r = rows[t]
    vs_wh = f"{r['mibs']/wh['mibs']:.2f}" if wh else "-"
    print(f"| {t} | {r['mibs']:.0f} | {r['mibs']/pipe['mibs']:.2f} | {vs_wh} | {r['cpu']:.2f} "
          f"| {r['rss_s']/1024:.1f} MB / {r['rss_r']/1024:.1f} MB |")
s = rows["schat-send"]
print(f"\nschat /send vs schat --pipe: throughput {s['mibs']/pipe['mibs']:.2f}×, peak RSS "
      f"{max(s['rss_s'], s['rss_r'])/max(pipe['rss_s'], pipe['rss_r']):.2f}× (the larger side of each); "
      "both from the start of the dial to the receiver's exit, the file written out and (for /send) hashed and checked")
if wh:
    print(f"schat /send vs magic-wormhole: throughput {s['mibs']/wh['mibs']:.2f}×")
PY
