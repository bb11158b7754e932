#!/usr/bin/env bash
# The SD-card image of a Raspberry Pi 4 from a built arm64 tree, without loop
# devices or mounts (mkfs.ext4 -d, mkfs.vfat + mcopy, sfdisk on a file):
#   image/mkdisk.sh TREE OUTDIR
# OUTDIR gets: disk.img (the whole card, for a blank card), and the parts for
# re-imaging or updating a card that already has a data partition (README):
# boot.img, root.img, data.img, update/ (root.img + boot-slot.tar + SHA256SUMS).
#
# MBR, four primary partitions (the Pi 4 boot ROM reads MBR from any EEPROM):
#   1 APPBOOT  vfat  256 MiB  firmware, config.txt (os_prefix=slot-a/), tryboot.txt,
#                             slot-a/ and slot-b/ (kernel, initrd, dtbs, cmdline.txt)
#   2 root A   ext4  ROOT_MB  read-only root, slot a
#   3 root B   ext4  ROOT_MB  read-only root, slot b (the same at first)
#   4 data     ext4  DATA_MB  LABEL=appliance-data, /var/lib/appliance; grown to the
#                             end of the card at first boot (appliance-grow-data)
set -euo pipefail

TREE="$1"; OUTDIR="$2"
: "${SOURCE_DATE_EPOCH:=$(stat -c %Y "$TREE/etc/fstab")}"
: "${ROOT_MB:=2048}" "${DATA_MB:=512}" "${BOOT_MB:=256}"
# Fixed identifiers: the same tree gives the same bytes, and cmdline.txt can name
# the root partitions (PARTUUID = disk id + partition number on MBR).
: "${DISK_ID:=0x0a11ce10}"
export E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH"
PARTUUID="${DISK_ID#0x}"
CMDLINE="$(cat "$TREE/usr/lib/appliance/cmdline")"
for t in mkfs.ext4 mkfs.vfat mcopy sfdisk; do
    command -v "$t" >/dev/null || { echo "mkdisk.sh: needs $t (e2fsprogs dosfstools mtools fdisk)" >&2; exit 2; }
done
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR/stage/boot" "$OUTDIR/update"
S="$OUTDIR/stage"

# Boot partition: the firmware at the top, everything the kernel needs per slot.
FW="$TREE/boot/firmware"
for f in "$FW"/*; do
    case "$(basename "$f")" in
        bootcode.bin|start*.elf|fixup*.dat|LICENCE*) cp -a "$f" "$S/boot/" ;;
    esac
done
mkdir -p "$S/slot"
# The newest kernel of the tree and its initrd (Debian links them at /vmlinuz).
KVER="$(basename "$(ls "$TREE"/boot/vmlinuz-* | sort -V | tail -1)")"; KVER="${KVER#vmlinuz-}"
cp -a "$TREE/boot/vmlinuz-$KVER" "$S/slot/vmlinuz"
cp -a "$TREE/boot/initrd.img-$KVER" "$S/slot/initrd.img"
cp -a "$FW"/*.dtb "$S/slot/" 2>/dev/null || cp -a "$TREE"/usr/lib/linux-image-*/broadcom/bcm2711*.dtb "$S/slot/"
[ -d "$FW/overlays" ] && cp -a "$FW/overlays" "$S/slot/"
for slot in a b; do
    cp -a "$S/slot" "$S/boot/slot-$slot"
    n=2; [ "$slot" = b ] && n=3
    echo "root=PARTUUID=$PARTUUID-0$n $CMDLINE" > "$S/boot/slot-$slot/cmdline.txt"
done
bootcfg() {
    cat <<EOF
# Written by image/mkdisk.sh. A/B: os_prefix names the slot the firmware boots;
# appliance-update writes the other slot, tries it once with tryboot.txt and
# switches this line only when the new slot has come up (README "Updates").
[all]
arm_64bit=1
enable_uart=1
kernel=vmlinuz
initramfs initrd.img followkernel
os_prefix=slot-$1/
EOF
}
bootcfg a > "$S/boot/config.txt"
bootcfg b > "$S/boot/tryboot.txt"
find "$S/boot" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
rm -f "$OUTDIR/boot.img"
mkfs.vfat -n APPBOOT -i "${PARTUUID}" -C "$OUTDIR/boot.img" $((BOOT_MB * 1024)) >/dev/null
mcopy -s -p -m -i "$OUTDIR/boot.img" "$S/boot/"* ::/
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$S/slot" -cf "$OUTDIR/update/boot-slot.tar" .

# Root: the tree with an empty /boot/firmware (the boot partition is mounted there).
mkdir -p "$S/root"
cp -a "$TREE/." "$S/root/"
rm -rf "$S/root/boot/firmware"; mkdir "$S/root/boot/firmware"
touch --no-dereference --date="@$SOURCE_DATE_EPOCH" "$S/root/boot/firmware" "$S/root/boot"
mkfs.ext4 -q -L appliance-root -U clear -E hash_seed=0a11ce10-0000-4000-8000-000000000002,root_owner=0:0 \
    -O ^has_journal -m 0 -d "$S/root" "$OUTDIR/root.img" "${ROOT_MB}M"
# The data partition starts empty; `appliance init` fills it on site.
mkfs.ext4 -q -L appliance-data -U 0a11ce10-0000-4000-8000-000000000004 \
    -E hash_seed=0a11ce10-0000-4000-8000-000000000004 "$OUTDIR/data.img" "${DATA_MB}M"
cp --sparse=always "$OUTDIR/root.img" "$OUTDIR/update/root.img"
(cd "$OUTDIR/update" && sha256sum root.img boot-slot.tar > SHA256SUMS)

# The card: 1 MiB alignment; parts written into a sparse file at their offsets.
MB=$((1024 * 1024)); start=1
P1=$start; P2=$((P1 + BOOT_MB)); P3=$((P2 + ROOT_MB)); P4=$((P3 + ROOT_MB)); END=$((P4 + DATA_MB))
truncate -s $(( (END + 1) * MB )) "$OUTDIR/disk.img"
sfdisk --quiet "$OUTDIR/disk.img" <<EOF
label: dos
label-id: $DISK_ID
unit: sectors
start=$((P1 * 2048)), size=$((BOOT_MB * 2048)), type=c, bootable
start=$((P2 * 2048)), size=$((ROOT_MB * 2048)), type=83
start=$((P3 * 2048)), size=$((ROOT_MB * 2048)), type=83
start=$((P4 * 2048)), size=$((DATA_MB * 2048)), type=83
EOF
dd if="$OUTDIR/boot.img" of="$OUTDIR/disk.img" bs=1M seek=$P1 conv=notrunc,sparse status=none
dd if="$OUTDIR/root.img" of="$OUTDIR/disk.img" bs=1M seek=$P2 conv=notrunc,sparse status=none
dd if="$OUTDIR/root.img" of="$OUTDIR/disk.img" bs=1M seek=$P3 conv=notrunc,sparse status=none
dd if="$OUTDIR/data.img" of="$OUTDIR/disk.img" bs=1M seek=$P4 conv=notrunc,sparse status=none
rm -rf "$S"
(cd "$OUTDIR" && sha256sum disk.img boot.img root.img data.img > SHA256SUMS)
echo "mkdisk.sh: $OUTDIR/disk.img ($(( (END + 1) )) MiB, $(du -sh "$OUTDIR/disk.img" | cut -f1) allocated)"
