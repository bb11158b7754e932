#!/usr/bin/env bash
# `make run`: the appliance's main job on the simulator, data under ./var.
# The first run initialises ./var with a DEMO manager account whose password
# is written to var/demo-password.txt: a demonstration only, never for a real site.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-./var}
APP=.venv/bin/appliance
mkdir -p "$DATA"
if [ ! -f "$DATA/catalog.sqlite" ]; then
    umask 077
    echo "demo-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')" > "$DATA/demo-password.txt"
    "$APP" --data-dir "$DATA" init --manager demo-kanri \
        --password-file "$DATA/demo-password.txt" --recovery-key-file "$DATA/demo-recovery-key.txt"
fi
echo "== デモ / DEMO: data in $DATA; staff login demo-kanri, password in $DATA/demo-password.txt =="
# the staff web service on loopback only (plain HTTP is allowed there alone), up
# while the demo records, so the calls can be watched arriving in a browser
WEB=${WEB_LISTEN:-127.0.0.1:8080}
echo "デモ / DEMO: demo-kanri (password in $DATA/demo-password.txt)" > "$DATA/demo-login.txt"
"$APP" --data-dir "$DATA" --config scenarios/appliance.toml web --listen "$WEB" --http \
    --demo-login-file "$DATA/demo-login.txt" &
web_pid=$!
trap 'kill $web_pid 2>/dev/null || true' EXIT
echo "== 職員画面 / staff web (DEMO): http://$WEB/  login demo-kanri, password: $(cat "$DATA/demo-password.txt") =="
# the shipped demo configuration names the simulator and scenarios/demo.toml (about 45 s)
"$APP" --data-dir "$DATA" --config scenarios/appliance.toml run "${@:2}"
echo
echo "通話記録の一覧 / list the calls:"
echo "  $APP --data-dir $DATA calls --user demo-kanri --password-file $DATA/demo-password.txt"
"$APP" --data-dir "$DATA" calls --user demo-kanri --password-file "$DATA/demo-password.txt"
echo
echo "== 職員画面 / staff web (DEMO) still at http://$WEB/ — Ctrl-C to stop =="
wait $web_pid
