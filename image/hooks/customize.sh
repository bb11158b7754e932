#!/usr/bin/env bash
# mmdebstrap customize hook: turns a bare Debian tree ($1) into the appliance.
# Runs on the build host; commands that must run inside use chroot (mmdebstrap
# keeps /dev, /proc and /sys mounted in the tree while its hooks run).
# Inputs from build.sh: ARCH CONSOLE_TTY APPLIANCE_CONFIG REPO WORK SOURCE_DATE_EPOCH.
set -euo pipefail

ROOT="$1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" DEBIAN_FRONTEND=noninteractive "$@"; }

# The image's own files first (the technician's login shell is one of them).
cp -a "$HERE/rootfs/." "$ROOT/"

# --- accounts -----------------------------------------------------------------
# Fixed ids: the data partition outlives the root image (re-imaging, A/B
# updates), so its owners must have the same numbers in every build.
# useradd leaves the password field locked ('!'): no account has a password.
in_root groupadd --system --gid 900 appliance
in_root groupadd --system --gid 904 appliance-tech   # technicians (ops issue's polkit rule)
in_root groupadd --system --gid 905 gpio             # the recorder's SupplementaryGroups
in_root useradd --system --uid 901 --gid appliance --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin --comment "appliance recorder" appliance-rec
in_root useradd --system --uid 902 --gid appliance --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin --comment "appliance staff web" appliance-web
# The technician (保守) on the serial console: no password, its shell is
# `appliance console`, never a Unix shell (U2; docs/console in the ops issue).
in_root useradd --system --uid 903 --gid appliance --home-dir /nonexistent --no-create-home \
    --shell /usr/lib/appliance/console-shell --comment "technician (保守)" hoshu
# root: locked, no hash (base-passwd ships '*'; make sure nothing changed it).
in_root usermod --password '*' root

# --- the package ------------------------------------------------------------------
# A virtualenv on Debian's python3, filled from the wheelhouse only (--no-index):
# nothing is fetched here. The sdists (pyalsaaudio) compile against the tree's
# own libasound with the compilers build.sh added to the package list
# (packages-build.txt); they are purged again right after.
cp -r "$WORK/wheelhouse" "$ROOT/tmp/wheelhouse"
in_root python3 -m venv /opt/appliance/.venv
VPIP=(/opt/appliance/.venv/bin/python -m pip --no-cache-dir --disable-pip-version-check)
in_root "${VPIP[@]}" install --quiet --no-index --find-links /tmp/wheelhouse \
    "$(grep -E '^setuptools==' "$WORK/wheelhouse/requirements.txt")"
in_root "${VPIP[@]}" install --quiet --no-index --find-links /tmp/wheelhouse --no-build-isolation \
    -r /tmp/wheelhouse/requirements.txt "/tmp/wheelhouse/$(cd "$ROOT/tmp/wheelhouse" && ls appliance-*.whl)"
mapfile -t BUILD_DEPS < <(grep -v -E '^\s*(#|$)' "$HERE/packages-build.txt")
in_root apt-get purge -y --autoremove "${BUILD_DEPS[@]}" >/dev/null
rm -rf "$ROOT/tmp/wheelhouse"

# --- files of the image ------------------------------------------------------------
install -D -m 0644 "$APPLIANCE_CONFIG" "$ROOT/etc/appliance/appliance.toml"
# The telephony interface's udev rules, when the hardware issue has added them.
for r in "$REPO"/hw/*.rules; do
    if [ -e "$r" ]; then install -D -m 0644 "$r" "$ROOT/etc/udev/rules.d/$(basename "$r")"; fi
done

# The units of ../systemd/ as committed (build.sh's git archive), as vendor units
# so that drop-ins in /etc/systemd/system/*.d/ can adjust them for the image.
SRC="$WORK/src"
UNITDIR="$ROOT/usr/lib/systemd/system"
ENABLE=()
for f in "$SRC"/systemd/*; do
    b="$(basename "$f")"
    case "$b" in
        *.service|*.timer|*.path|*.socket|*.target) install -m 0644 "$f" "$UNITDIR/$b" ;;
    esac
done
for u in appliance-recorder.service appliance-web.service appliance-retention.timer; do
    if [ -f "$UNITDIR/$u" ]; then ENABLE+=("$u"); else echo "customize: no $u in systemd/" >&2; fi
done
# The console & operations issue's serial console (docs/operations.md): its getty
# drop-in goes on this board's console port, its login shell to
# /opt/appliance/bin/appliance-console (in /etc/shells), its polkit rule to
# /etc/polkit-1/rules.d/ (in force only where polkitd is installed).
GETTY_DROPIN="$(find "$SRC/systemd" -path '*serial-getty@*.service.d/*.conf' | head -1)"
if [ -n "$GETTY_DROPIN" ]; then
    install -D -m 0644 "$GETTY_DROPIN" \
        "$ROOT/etc/systemd/system/serial-getty@$CONSOLE_TTY.service.d/$(basename "$GETTY_DROPIN")"
fi
if [ -f "$SRC/systemd/appliance-console-shell" ]; then
    install -D -m 0755 "$SRC/systemd/appliance-console-shell" "$ROOT/opt/appliance/bin/appliance-console"
    grep -qx /opt/appliance/bin/appliance-console "$ROOT/etc/shells" \
        || echo /opt/appliance/bin/appliance-console >> "$ROOT/etc/shells"
    TECH_SHELL=/opt/appliance/bin/appliance-console
else
    TECH_SHELL=/usr/lib/appliance/console-shell
fi
for r in "$SRC"/systemd/*.rules; do
    if [ -e "$r" ]; then install -D -m 0644 "$r" "$ROOT/etc/polkit-1/rules.d/$(basename "$r")"; fi
done
# Other getty/console units the ops issue may add later: a template X@.service
# is enabled on the console port.
for f in "$SRC"/systemd/*getty*.service "$SRC"/systemd/*console*.service; do
    [ -e "$f" ] || continue
    b="$(basename "$f")"
    case "$b" in *@.service) ENABLE+=("${b%@.service}@$CONSOLE_TTY.service") ;; *) ENABLE+=("$b") ;; esac
done
ENABLE+=("serial-getty@$CONSOLE_TTY.service")

# Technicians' own accounts (login(1) authenticates them, docs/operations.md): only
# from a site file TECHNICIANS= of 'name:crypt-hash' lines that the city keeps
# (never in git). Without one the image has no password at all, and the serial
# console logs the technician account hoshu in with no password instead, so that
# a first boot can reach the console; README "Console" says why and what it costs.
if [ -n "${TECHNICIANS:-}" ]; then
    while IFS=: read -r name hash; do
        case "$name" in ''|'#'*) continue ;; esac
        in_root useradd --system --gid appliance --groups appliance-tech --home-dir /nonexistent \
            --no-create-home --shell "$TECH_SHELL" --password "$hash" "$name"
    done < "$TECHNICIANS"
else
    in_root usermod --shell "$TECH_SHELL" --append --groups appliance-tech hoshu
    install -D -m 0644 "$HERE/hooks/serial-getty-appliance.conf" \
        "$ROOT/etc/systemd/system/serial-getty@$CONSOLE_TTY.service.d/zz-image-autologin.conf"
fi
ENABLE+=(appliance-await-init.service appliance-init-done.path
         systemd-networkd.service systemd-resolved.service systemd-timesyncd.service)
if [ "$ARCH" = arm64 ]; then ENABLE+=(appliance-grow-data.service appliance-update-commit.service); fi
systemctl --root="$ROOT" enable "${ENABLE[@]}"
printf '%s\n' "${ENABLE[@]}" > "$ROOT/usr/lib/appliance/enabled-units"
# Never SSH: the package is not in the list; make sure nothing pulled it in.
if [ -e "$ROOT/usr/sbin/sshd" ]; then echo "customize: sshd found in the tree" >&2; exit 1; fi
# The console tools are reached through /usr/bin, never $PATH (appliance console).
ln -sf /opt/appliance/.venv/bin/appliance "$ROOT/usr/bin/appliance"

# --- read-only root ---------------------------------------------------------------------
# The root is mounted read-only (kernel 'ro' and fstab); everything written at
# run time goes to tmpfs or to the data partition. See README "Layout".
{
    echo "# Written by image/hooks/customize.sh. The root is read-only; only the data"
    echo "# partition and the tmpfs below are writable (image/check.sh verifies it)."
    echo "/dev/root            /                   auto   ro,noatime                                        0 0"
    if [ "$ARCH" = arm64 ]; then
        echo "LABEL=APPBOOT        /boot/firmware      vfat   ro,noatime,umask=0022,nofail                      0 0"
    fi
    echo "LABEL=appliance-data /var/lib/appliance  ext4   rw,noatime,nosuid,nodev,noexec,x-systemd.growfs,x-systemd.device-timeout=30s 0 2"
    echo "tmpfs                /tmp                tmpfs  rw,nosuid,nodev,mode=1777,size=64M                0 0"
    echo "tmpfs                /var/tmp            tmpfs  rw,nosuid,nodev,mode=1777,size=16M                0 0"
    echo "tmpfs                /var/log            tmpfs  rw,nosuid,nodev,noexec,mode=0755,size=16M         0 0"
    echo "tmpfs                /var/cache          tmpfs  rw,nosuid,nodev,noexec,mode=0755,size=16M         0 0"
    echo "tmpfs                /var/lib/systemd    tmpfs  rw,nosuid,nodev,noexec,mode=0755,size=8M          0 0"
    echo "tmpfs                /var/lib/private    tmpfs  rw,nosuid,nodev,noexec,mode=0700,size=8M          0 0"
} > "$ROOT/etc/fstab"
mkdir -p "$ROOT/var/lib/appliance" "$ROOT/var/lib/private"
# resolv.conf and the machine id live in /run: empty machine-id = a new one each
# boot (systemd mounts it over the read-only file), and no two appliances share one.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
ln -sf /etc/machine-id "$ROOT/var/lib/dbus/machine-id"
echo appliance > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tappliance\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$ROOT/etc/hosts"

# The kernel command line for the Pi (boot partition, mkdisk.sh) and qemu (boot.sh).
echo "console=$CONSOLE_TTY,115200 ro rootwait fsck.repair=yes" > "$ROOT/usr/lib/appliance/cmdline"

# --- leave nothing of the build behind --------------------------------------------------
rm -rf "$ROOT"/var/log/* "$ROOT"/var/cache/* "$ROOT"/tmp/* "$ROOT"/var/tmp/* \
       "$ROOT"/var/lib/apt/lists/* "$ROOT"/root/.cache
# (File times are clamped by build.sh once mmdebstrap has unmounted /dev, /proc, /sys.)
