#!/usr/bin/env bash
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Start/stop virtlogd + libvirtd without systemd, for the real libvirt test layer.
#
# Usage: bash tests/backends/libvirtd/ctl.sh start|stop|status|logs
#   start   no-op when qemu:///system already answers; otherwise starts virtlogd and
#           libvirtd and waits (bounded, CTL_START_TIMEOUT seconds, default 60) until
#           `virsh -c qemu:///system version` answers
#   stop    stops libvirtd and virtlogd; running QEMU guests are left running (libvirtd
#           reconnects to them on the next start): run `guests.py cleanup PREFIX` first
#   status  exit 0 when qemu:///system answers, 3 when not
#   logs    print the tail of the daemon logs
# Files: $PRECHANGE_TEST_STATE (default /var/lib/prechange-test)/daemon/{*.pid,*.log}.
# Run setup.sh once before (it installs the packages and writes /etc/libvirt/qemu.conf).
set -euo pipefail

STATE="${PRECHANGE_TEST_STATE:-/var/lib/prechange-test}"
DIR="$STATE/daemon"
LIBVIRTD_LOG="$DIR/libvirtd.log"
VIRTLOGD_LOG="$DIR/virtlogd.log"
TINI_PID="$DIR/tini.pid"
# The daemons' own default pid files: using them means any other way of starting the
# daemons is detected as "already running" (libvirtd locks its pid file).
LIBVIRTD_PID=/run/libvirtd.pid
VIRTLOGD_PID=/run/virtlogd.pid
URI=qemu:///system
TIMEOUT="${CTL_START_TIMEOUT:-60}"

log() { echo "ctl.sh: $*" >&2; }

alive() { # alive PIDFILE -> 0 when the pid in it is a live process
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

answers() {
    timeout 10 virsh -q -c "$URI" version >/dev/null 2>&1
}

tail_logs() {
    for f in "$VIRTLOGD_LOG" "$LIBVIRTD_LOG"; do
        [ -f "$f" ] && { echo "--- tail $f"; tail -n 30 "$f"; }
    done
    return 0
}

# Run a daemon without the caller's open descriptors beyond 0-2: started under
# `flock /tmp/prechange-libvirt.lock ...`, a daemon (or a shell waiting for it) that inherits the
# lock's descriptor holds the lock for as long as it runs, and every later `flock` waits forever.
# Call it only in a subshell or as a background job: it closes that shell's descriptors, then execs.
without_inherited_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
}

start() {
    if answers; then
        log "libvirtd already answers on $URI"
        return 0
    fi
    for bin in libvirtd virtlogd virsh tini; do
        command -v "$bin" >/dev/null || { log "$bin not found: run setup.sh first"; exit 1; }
    done
    [ -f /etc/libvirt/qemu.conf ] || { log "/etc/libvirt/qemu.conf missing: run setup.sh first"; exit 1; }
    mkdir -p "$DIR" /run/libvirt /var/log/libvirt/qemu

    if ! alive "$VIRTLOGD_PID"; then
        # Without virtlogd, starting any domain fails (QEMU's stdout/stderr go through it).
        rm -f "$VIRTLOGD_PID"
        (without_inherited_fds virtlogd --daemon --pid-file "$VIRTLOGD_PID") >>"$VIRTLOGD_LOG" 2>&1
    fi

    if ! alive "$LIBVIRTD_PID"; then
        rm -f "$LIBVIRTD_PID"
        echo "=== $(date -u +%FT%TZ) ctl.sh start" >>"$LIBVIRTD_LOG"
        # libvirtd runs in the foreground under `tini -s` (child subreaper): QEMU processes
        # libvirtd forks and orphans are reaped by tini at once instead of by the
        # container's PID 1, which reaps slowly; that saves ~1.5 s on every revert and
        # VM stop. setsid + nohup detach it from the caller's terminal and session, so a
        # pytest or CI step that exits does not take the daemon down with it.
        LIBVIRT_LOG_OUTPUTS="3:stderr" without_inherited_fds setsid nohup tini -s -- \
            libvirtd --pid-file "$LIBVIRTD_PID" </dev/null >>"$LIBVIRTD_LOG" 2>&1 &
        echo $! >"$TINI_PID"
    fi

    local waited=0
    until answers; do
        if [ -s "$TINI_PID" ] && ! kill -0 "$(cat "$TINI_PID")" 2>/dev/null && ! alive "$LIBVIRTD_PID"; then
            log "libvirtd exited during startup"
            tail_logs >&2
            exit 1
        fi
        if [ "$waited" -ge $((TIMEOUT * 5)) ]; then
            log "libvirtd did not answer on $URI within ${TIMEOUT}s"
            tail_logs >&2
            exit 1
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    log "libvirtd answers on $URI (logs: $DIR)"
}

stop_pidfile() { # stop_pidfile NAME PIDFILE
    local name="$1" pidfile="$2" pid _
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do # up to 20 s for a clean shutdown
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 20 s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop() {
    stop_pidfile libvirtd "$LIBVIRTD_PID"
    stop_pidfile tini "$TINI_PID"
    stop_pidfile virtlogd "$VIRTLOGD_PID"
    log "stopped"
}

status() {
    if answers; then
        echo "running: $(virsh -q -c "$URI" version 2>/dev/null | tr '\n' ' ')"
        return 0
    fi
    echo "not running"
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    logs) tail_logs ;;
    *) echo "usage: $0 start|stop|status|logs" >&2; exit 2 ;;
esac
