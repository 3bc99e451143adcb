#!/usr/bin/env bash
# A/B in one run: the pipe of two schat builds over loopback TCP, taking turns, pinned.
# For a change that should not move performance (a refactor), this says whether it did.
#
#   benches/ab.sh REV                  # this tree against git revision REV (built in a worktree)
#   benches/ab.sh /path/to/schat       # this tree against a binary built earlier
#   SIZE_MIB=512 REPS=7 benches/ab.sh HEAD~3
#
# Each build talks to itself (builds from different protocol revisions may not talk to each
# other). Prints, per build, the median MiB/s, CPU seconds per GiB (sender + receiver, user +
# system) and peak RSS, then the ratios new/old.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 1 ] || { sed -n 2,11p "$0" >&2; exit 2; }
SIZE_MIB=${SIZE_MIB:-1024}
REPS=${REPS:-5}
SIZE=$((SIZE_MIB * 1024 * 1024))
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time): apt-get install time" >&2; exit 1; }

work=$(mktemp -d)
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    [ -n "${tree:-}" ] && git worktree remove --force "$tree" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "building this tree (release)..." >&2
cargo build --release --quiet
cp target/release/schat "$work/new"
if [ -x "$1" ] && [ -f "$1" ]; then
    cp "$1" "$work/old"
else
    rev=$(git rev-parse --verify "$1^{commit}")
    tree=$work/tree
    echo "building $rev (release, in a worktree; its own target directory)..." >&2
    git worktree add --detach --quiet "$tree" "$rev"
    (cd "$tree" && CARGO_TARGET_DIR=${AB_TARGET_DIR:-$PWD/target} cargo build --release --quiet)
    cp "${AB_TARGET_DIR:-$tree/target}/release/schat" "$work/old"
fi

SEND_CPU="" RECV_CPU=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SEND_CPU="taskset -c 0" RECV_CPU="taskset -c $(($(nproc) - 1))"
fi

for b in old new; do
    "$work/$b" --home "$work/$b-a" keygen >/dev/null 2>&1
    "$work/$b" --home "$work/$b-b" keygen >/dev/null 2>&1
done

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
wait_port() {
    local hex
    hex=$(printf '%04X' "$1")
    for _ in $(seq 200); do
        grep -q ":$hex [0-9A-F:]* 0A " /proc/net/tcp && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    return 1
}

# run B: one transfer with build B; appends "seconds cpu_seconds rss_sender rss_receiver".
run() {
    local b=$1 port start end fa fb
    fa=$("$work/$b" --home "$work/$b-a" fingerprint --raw)
    fb=$("$work/$b" --home "$work/$b-b" fingerprint --raw)
    port=$(free_port)
    $RECV_CPU /usr/bin/time -f "%M %U %S" -o "$work/r" "$work/$b" --home "$work/$b-b" \
        listen 127.0.0.1:"$port" --pipe --quiet --peer "$fa" </dev/null >/dev/null 2>>"$work/err" &
    wait_port "$port"
    start=$(date +%s.%N)
    $SEND_CPU head -c $SIZE /dev/zero | $SEND_CPU /usr/bin/time -f "%M %U %S" -o "$work/s" \
        "$work/$b" --home "$work/$b-a" dial 127.0.0.1:"$port" --pipe --quiet --peer "$fb" \
        >/dev/null 2>>"$work/err"
    wait
    end=$(date +%s.%N)
    read -r rs us ss <"$work/s"
    read -r rr ur sr <"$work/r"
    awk -v a="$start" -v z="$end" -v c="$us $ss $ur $sr" -v m="$rs $rr" \
        'BEGIN { split(c, x, " "); print z - a, x[1] + x[2] + x[3] + x[4], m }' >>"$work/$b.runs"
}

for i in $(seq "$REPS"); do
    echo "round $i of $REPS" >&2
    if ((i % 2)); then run old; run new; else run new; run old; fi
done

python3 - "$work" "$SIZE_MIB" <<'PY'
import statistics, sys
work, mib = sys.argv[1], int(sys.argv[2])
res = {}
for b in ("old", "new"):
    runs = [list(map(float, l.split())) for l in open(f"{work}/{b}.runs")]
    res[b] = dict(
        mibs=statistics.median(mib / r[0] for r in runs),
        cpu=statistics.median(r[1] / (mib / 1024) for r in runs),
        rss_s=max(r[2] for r in runs) / 1024,
        rss_r=max(r[3] for r in runs) / 1024,
        spread=(min(mib / r[0] for r in runs), max(mib / r[0] for r in runs)),
    )
    r = res[b]
    print(f"{b}: {r['mibs']:.0f} MiB/s (runs {r['spread'][0]:.0f}-{r['spread'][1]:.0f}), "
          f"{r['cpu']:.2f} CPU s/GiB, peak RSS sender {r['rss_s']:.1f} MiB, receiver {r['rss_r']:.1f} MiB")
o, n = res["old"], res["new"]
print(f"new/old: throughput {n['mibs']/o['mibs']:.3f}x, CPU per GiB {n['cpu']/o['cpu']:.3f}x, "
      f"peak RSS {max(n['rss_s'], n['rss_r'])/max(o['rss_s'], o['rss_r']):.3f}x")
PY
