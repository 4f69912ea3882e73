#!/usr/bin/env bash
# Runs one Windows test program under wine64 in the tests' own prefix
# (scripts/install-windows.sh makes it) and judges the run:
#
#   scripts/wine-run.sh [--timeout SECONDS] [--dll-dir DIR]... [--expect LINE] PROGRAM.exe [ARGS...]
#
#   --timeout S   the deadline for the program (default $PYB_WINE_TIMEOUT or
#                 120 s); past it the program is killed, the wine server of the
#                 prefix is ended (`wineserver -k`, which ends whatever the
#                 program left running) and the run fails with status 124.
#   --dll-dir D   a Unix folder added to the program's PATH, where Windows looks
#                 for the DLLs it imports (e.g. an embeddable CPython's folder).
#   --expect L    the line the program must print last on stdout (default
#                 "<program name without .exe>: all checks passed", the
#                 convention of every host in tests/c/ and tests/cpp/).
#   --expect-start L  the last line must start with L instead (a summary
#                 line that ends with measured numbers).
#
# A run passes only when the program exits with 0 AND its stdout ends with the
# expected line: under wine a crash can exit with status 0, so the status alone
# proves nothing. Exit status: 0 passed, 124 timed out, 1 failed otherwise.
#
# Wine's traps that this handles (wine 8.0):
#   - CPython refuses a regular file as stdin, stdout or stderr ([WinError 6]):
#     the program gets pipes for all three, whatever this script's own are.
#   - The wine server's services start with the first program of a session and
#     inherit its output; a service holding the captured pipe open would keep
#     the reader waiting forever. So the server is started first, and a first
#     program run with its output to /dev/null; the server then lingers
#     ($PYB_WINE_LINGER seconds, default 30) so the next run does not pay the
#     2 s start again.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

timeout_seconds="${PYB_WINE_TIMEOUT:-120}"
dll_dirs=()
expect=""
expect_start=""
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout_seconds="$2"; shift 2 ;;
    --dll-dir) dll_dirs+=("$2"); shift 2 ;;
    --expect) expect="$2"; shift 2 ;;
    --expect-start) expect_start="$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "wine-run: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ]; then
  echo "usage: scripts/wine-run.sh [--timeout S] [--dll-dir DIR]... [--expect LINE | --expect-start TEXT] PROGRAM.exe [ARGS...]" >&2
  exit 2
fi
program="$1"
shift
name="$(basename "$program" .exe)"
name="${name##*\\}"  # a Windows path (C:\...\x.exe) has no / for basename
expect="${expect:-$name: all checks passed}"
if [ ! -f "$PYB_WINEPREFIX/.pybridge-prefix-ready" ]; then
  echo "wine-run: no wine prefix at $PYB_WINEPREFIX: run scripts/install-windows.sh first" >&2
  exit 1
fi

pyb_wine_env
if [ "${#dll_dirs[@]}" -gt 0 ]; then
  path=""
  for dir in "${dll_dirs[@]}"; do path="${path:+$path;}$(pyb_wine_path "$dir")"; done
  export WINEPATH="$path"
fi

# The server, and its services, with nothing of ours to hold (a no-op when it already runs).
# Under a deadline of its own: a first start takes 2-8 s.
wineserver -p"${PYB_WINE_LINGER:-30}" </dev/null >/dev/null 2>&1
timeout --kill-after=5 60 "$PYB_WINE" cmd /c rem </dev/null >/dev/null 2>&1

scratch="$(mktemp -d)"
# Not an EXIT trap: the background children below would inherit it and run it
# when killed.
end_with() {
  rm -rf "$scratch"
  exit "$1"
}
mkfifo "$scratch/stdout" "$scratch/stderr"
# Readers first: they copy the program's output to ours as it comes, and keep stdout.
tee "$scratch/stdout.txt" <"$scratch/stdout" &
stdout_reader=$!
cat <"$scratch/stderr" >&2 &
stderr_reader=$!

started=$(date +%s%N)
timeout --kill-after=5 "$timeout_seconds" "$PYB_WINE" "$program" "$@" \
  < <(:) >"$scratch/stdout" 2>"$scratch/stderr"
status=$?
elapsed_ms=$((($(date +%s%N) - started) / 1000000))

timed_out=0
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  timed_out=1
  # What the program started (threads stuck in wine, child processes) goes with the server.
  wineserver -k </dev/null >/dev/null 2>&1
fi
# The program has ended, so its output is complete and the readers end at
# once; one still waiting 10 s later means something else holds the pipe: end
# the prefix's processes, then the readers.
sleep 10 &
guard=$!
readers=("$stdout_reader" "$stderr_reader")
while [ "${#readers[@]}" -gt 0 ]; do
  ended=""
  wait -n -p ended "${readers[@]}" "$guard"
  if [ "$ended" = "$guard" ]; then
    echo "wine-run: $name: a process it left behind held its output open; ending the wine server" >&2
    wineserver -k </dev/null >/dev/null 2>&1
    kill "${readers[@]}" 2>/dev/null
    wait "${readers[@]}" 2>/dev/null
    break
  fi
  remaining=()
  for reader in "${readers[@]}"; do [ "$reader" = "$ended" ] || remaining+=("$reader"); done
  readers=("${remaining[@]}")
done
kill "$guard" 2>/dev/null
wait "$guard" 2>/dev/null

if [ "$timed_out" = 1 ]; then
  echo "wine-run: $name: TIMED OUT after $timeout_seconds s (killed)" >&2
  end_with 124
fi
last_line="$(tr -d '\r' <"$scratch/stdout.txt" | awk 'NF { line = $0 } END { print line }')"
if [ "$status" != 0 ]; then
  echo "wine-run: $name: FAILED: exited with status $status after $elapsed_ms ms" >&2
  end_with 1
fi
if [ -n "$expect_start" ]; then
  if [ "${last_line#"$expect_start"}" = "$last_line" ]; then
    echo "wine-run: $name: FAILED: exited with status 0 after $elapsed_ms ms, but its last line is \"$last_line\", which does not start with \"$expect_start\" (a crash under wine can exit with 0)" >&2
    end_with 1
  fi
elif [ "$last_line" != "$expect" ]; then
  echo "wine-run: $name: FAILED: exited with status 0 after $elapsed_ms ms, but its last line is \"$last_line\", not \"$expect\" (a crash under wine can exit with 0)" >&2
  end_with 1
fi
echo "wine-run: $name: passed in $elapsed_ms ms"
end_with 0
