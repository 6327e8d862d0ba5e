#!/bin/sh
### BEGIN INIT INFO
# Provides:          prechange-demo
# Required-Start:    $local_fs $network
# Required-Stop:     $local_fs $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: prechange.snapshots e2e demo HTTP service
### END INIT INFO
NAME=prechange-demo
DAEMON=/usr/bin/python3
SCRIPT=/usr/lib/prechange-demo/server.py
PIDFILE=/run/prechange-demo.pid
[ -r /etc/default/prechange-demo ] && . /etc/default/prechange-demo
export PRECHANGE_DEMO_PORT="${PRECHANGE_DEMO_PORT:-8080}"

running() {
  start-stop-daemon --status --pidfile "$PIDFILE" --exec "$DAEMON" 2>/dev/null
}

case "$1" in
  start)
    running && exit 0
    start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$PIDFILE" \
      --exec "$DAEMON" -- "$SCRIPT"
    # Wait until it listens (python3 start-up is slow under emulation).
    i=0
    while [ $i -lt 150 ]; do
      running || { echo "$NAME: exited during start-up" >&2; exit 1; }
      python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PRECHANGE_DEMO_PORT), 1)" 2>/dev/null && exit 0
      sleep 0.2; i=$((i + 1))
    done
    echo "$NAME: not listening on $PRECHANGE_DEMO_PORT" >&2; exit 1
    ;;
  stop)
    start-stop-daemon --stop --quiet --retry TERM/5/KILL/2 --pidfile "$PIDFILE" --remove-pidfile --exec "$DAEMON"
    rc=$?; [ $rc -eq 1 ] && rc=0  # 1 = was not running
    exit $rc
    ;;
  restart|force-reload)
    "$0" stop && "$0" start
    ;;
  status)
    if running; then echo "$NAME is running"; exit 0; else echo "$NAME is not running"; exit 3; fi
    ;;
  *)
    echo "Usage: $0 {start|stop|restart|force-reload|status}" >&2; exit 2
    ;;
esac
