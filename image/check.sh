#!/usr/bin/env bash
# Checks a built appliance tree (image/build.sh --arch amd64), without booting it:
#   image/check.sh [TREE]        (default /tmp/appliance-image/amd64)
# Runs as root (chroot). Prints one line per check and "N passed, N failed".
set -euo pipefail

ROOT="${1:-/tmp/appliance-image/amd64}"
[ -d "$ROOT/opt/appliance/.venv" ] || { echo "check.sh: no built tree at $ROOT" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "check.sh: run as root (chroot)" >&2; exit 2; }

passed=0; failed=0
ok()   { passed=$((passed + 1)); echo "ok    $*"; }
bad()  { failed=$((failed + 1)); echo "FAIL  $*"; }
# chroot with a private /proc, /dev and /tmp, so the tree is never left with mounts
# (they die with the namespace, even if this script is killed) and the checks
# write nothing into it (tmpfs /tmp and /run, no bytecode).
in_root() {
    unshare --mount --fork -- sh -c '
        r="$1"; shift
        mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && mount -t tmpfs tmpfs "$r/tmp" && mount -t tmpfs tmpfs "$r/run"
        exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/ \
            PYTHONDONTWRITEBYTECODE=1 "$@"
    ' in_root "$ROOT" "$@"
}
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# 1. The package imports inside the tree, with its C parts, and runs.
if in_root /opt/appliance/.venv/bin/python -c '
import alsaaudio, argon2, nacl.public, numpy, opuslib_next, serial, sqlite_utils, uvicorn, fastapi
import appliance.cli, appliance.web, appliance.console.shell, appliance.ops.leds
opuslib_next.Encoder(8000, 2, opuslib_next.APPLICATION_VOIP)  # libopus0 of the tree, via ctypes
' >"$TMP/import.log" 2>&1; then
    ok "the appliance package and its dependencies import in the tree"
else
    bad "imports in the tree: $(tail -3 "$TMP/import.log")"
fi
if in_root /usr/bin/appliance --help >/dev/null 2>"$TMP/help.log"; then
    ok "'appliance --help' runs in the tree"
else
    bad "'appliance --help': $(tail -3 "$TMP/help.log")"
fi
# appliance init end to end in a scratch data dir of the tree's /tmp (sealing,
# argon2, SQLite: the real first-boot step, minus the console), then removed.
if in_root sh -c 'set -e; d=$(mktemp -d); printf "correct horse battery staple 42\n" > $d/pw
    /usr/bin/appliance --data-dir $d/data --config /etc/appliance/appliance.toml init \
        --manager kanri --password-file $d/pw --recovery-key-file $d/rk >/dev/null
    test -s $d/data/keys/archive.pub; test -s $d/data/catalog.sqlite
    /usr/lib/appliance/require-init >/dev/null 2>&1 && exit 1
    rm -rf $d' >"$TMP/init.log" 2>&1; then
    ok "'appliance init' works in the tree; require-init refuses an uninitialised data dir"
else
    bad "appliance init in the tree: $(tail -3 "$TMP/init.log")"
fi

# 2. systemd-analyze verify on the appliance's units and the ones the image enables,
#    with the tree's own systemd (chroot), so ExecStart paths and users resolve there.
mapfile -t UNITS < <(cd "$ROOT/usr/lib/systemd/system" && ls appliance-* | LC_ALL=C sort)
mapfile -t -O "${#UNITS[@]}" UNITS < "$ROOT/usr/lib/appliance/enabled-units"
mapfile -t UNITS < <(printf '%s\n' "${UNITS[@]}" | LC_ALL=C sort -u)
if in_root env SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "${UNITS[@]}" \
        >"$TMP/verify.log" 2>&1 && ! grep -v -E '^$' "$TMP/verify.log" | grep -q .; then
    ok "systemd-analyze verify: ${#UNITS[@]} units, no complaint (${UNITS[*]})"
else
    bad "systemd-analyze verify: $(head -c 2000 "$TMP/verify.log")"
fi
for u in appliance-recorder.service appliance-web.service appliance-retention.timer \
         systemd-timesyncd.service appliance-await-init.service appliance-init-done.path; do
    if [ -n "$(find "$ROOT/etc/systemd/system" -name "$u" -type l)" ]; then ok "enabled: $u"
    else bad "not enabled: $u"; fi
done
if [ -n "$(find "$ROOT/etc/systemd/system/getty.target.wants" "$ROOT/etc/systemd/system/multi-user.target.wants" \
          -name '*getty*' -o -name '*console*' 2>/dev/null)" ]; then
    ok "a getty is enabled on the serial console ($(cat "$ROOT/usr/lib/appliance/cmdline"))"
else
    bad "no serial-console getty enabled"
fi

# 3. Read-only root: fstab mounts / ro; every writable mount is tmpfs or the data
#    partition; no other mount unit or automount adds a writable path.
python3 - "$ROOT" >"$TMP/fstab.log" 2>&1 <<'EOF' && ok "read-only root: $(tail -1 "$TMP/fstab.log")" || bad "fstab: $(cat "$TMP/fstab.log")"
import pathlib, sys
root = pathlib.Path(sys.argv[1])
problems, writable = [], []
seen_root = False
for line in (root / "etc/fstab").read_text().splitlines():
    if not line.strip() or line.lstrip().startswith("#"):
        continue
    src, mnt, fstype, opts, *_ = line.split()
    o = opts.split(",")
    if mnt == "/":
        seen_root = True
        if "ro" not in o or "rw" in o:
            problems.append(f"/ is not ro: {opts}")
        continue
    if "ro" in o:
        continue
    if fstype == "tmpfs" or (mnt == "/var/lib/appliance" and src == "LABEL=appliance-data"):
        writable.append(mnt)
        if not (root / mnt.lstrip("/")).is_dir():
            problems.append(f"mount point {mnt} missing in the tree")
    else:
        problems.append(f"writable {mnt} ({fstype}) is neither tmpfs nor the data partition")
if not seen_root:
    problems.append("no / entry in fstab")
cmdline = (root / "usr/lib/appliance/cmdline").read_text().split()
if "ro" not in cmdline or "rw" in cmdline:
    problems.append(f"kernel command line does not mount / ro: {cmdline}")
for d in ("etc/systemd/system", "usr/lib/systemd/system"):
    for unit in sorted((root / d).rglob("*.mount")) + sorted((root / d).rglob("*.automount")):
        rel = unit.relative_to(root)
        # systemd's own API and tmpfs mounts (/dev/*, /sys/*, /proc/*, /run/*) are allowed
        where = next((l.split("=", 1)[1] for l in unit.read_text().splitlines()
                      if l.startswith("Where=")), "")
        what = next((l.split("=", 1)[1] for l in unit.read_text().splitlines()
                     if l.startswith(("What=", "Type="))), "")
        if where.startswith(("/dev", "/sys", "/proc", "/run")) or "tmpfs" in what:
            continue
        if unit.is_symlink() or d.startswith("etc"):
            problems.append(f"mount unit {rel} ({where}) is enabled")
if problems:
    print("; ".join(problems)); sys.exit(1)
print("writable only " + ", ".join(writable))
EOF

# 4. No password hash anywhere: every shadow entry is locked ('*' or '!…' with no
#    hash) and never empty (empty = login without a password); passwd says 'x'.
if awk -F: '$2 !~ /^(\*|!|!\*|!!)$/ { print "shadow: " $1 " has \"" substr($2,1,4) "…\""; bad=1 }
            END { exit bad }' "$ROOT/etc/shadow" >"$TMP/shadow.log" \
   && awk -F: '$2 != "x" { print "passwd: " $1; bad=1 } END { exit bad }' "$ROOT/etc/passwd" >>"$TMP/shadow.log" \
   && awk -F: '$2 !~ /^(\*|!|!\*|)$/ { print "gshadow: " $1; bad=1 } END { exit bad }' "$ROOT/etc/gshadow" >>"$TMP/shadow.log"; then
    ok "no password hash in /etc/shadow, /etc/gshadow, /etc/passwd ($(wc -l < "$ROOT/etc/shadow") accounts, all locked)"
else
    bad "$(cat "$TMP/shadow.log")"
fi

# 5. The rest of the layout the issue asks for.
if [ ! -e "$ROOT/usr/sbin/sshd" ] && [ -z "$(find "$ROOT/etc/systemd/system" -name 'ssh*')" ]; then
    ok "no SSH server in the tree"
else bad "an SSH server is installed or enabled"; fi
if grep -qs '^Storage=volatile' "$ROOT"/etc/systemd/journald.conf.d/*.conf \
   && grep -qs '^RuntimeMaxUse=' "$ROOT"/etc/systemd/journald.conf.d/*.conf; then
    ok "journald bounded ($(grep -h -E '^(Storage|RuntimeMaxUse)=' "$ROOT"/etc/systemd/journald.conf.d/*.conf | paste -sd' '))"
else bad "journald is not bounded"; fi
if [ ! -s "$ROOT/etc/machine-id" ] && [ -z "$(ls -A "$ROOT/var/lib/appliance")" ] \
   && [ -z "$(find "$ROOT/var/log" "$ROOT/var/cache" -type f)" ]; then
    ok "no machine id, no data, no logs or caches in the tree"
else bad "the tree carries a machine id, data, logs or caches"; fi
if [ -z "$(find "$ROOT" -xdev -newermt "@$(stat -c %Y "$ROOT/etc/fstab")" -print -quit)" ]; then
    ok "every file's time is SOURCE_DATE_EPOCH ($(date -u -d "@$(stat -c %Y "$ROOT/etc/fstab")" +%FT%TZ))"
else bad "files newer than SOURCE_DATE_EPOCH: $(find "$ROOT" -xdev -newer "$ROOT/etc/fstab" | head -3)"; fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
