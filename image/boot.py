#!/usr/bin/env python3
"""Boot a built amd64 tree under qemu and reach `appliance console` on the
emulated serial port (image/README.md "Checks"). Standard library only.

    image/boot.py [TREE]      (default /tmp/appliance-image/amd64)

The root file system goes in read-only at the block level (qemu readonly=on), so
a boot that gets to the console proves nothing on the root needs writing; a
fresh empty data disk is /var/lib/appliance. Passes when the serial port shows
the first-boot notice (the recorder refuses to record), the console's banner
and prompt, and the console answers a command; then powers the guest off.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/appliance-image/amd64")
TIMEOUT = float(os.environ.get("BOOT_TIMEOUT", "300"))


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="appliance-boot-", dir="/tmp"))
    try:
        return boot(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def boot(work: Path) -> int:
    size_mb = int(subprocess.check_output(["du", "-sm", "--apparent-size", str(TREE)]).split()[0])
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(int((TREE / "etc/fstab").stat().st_mtime)))
    # no journal: the image is never written (as on the card, mkdisk.sh)
    subprocess.run(["mkfs.ext4", "-q", "-L", "appliance-root", "-O", "^has_journal", "-m", "0",
                    "-d", str(TREE), str(work / "root.img"), f"{size_mb * 13 // 10 + 64}M"],
                   check=True, env=env)
    run("mkfs.ext4", "-q", "-L", "appliance-data", str(work / "data.img"), "256M")
    cmdline = (TREE / "usr/lib/appliance/cmdline").read_text().strip()
    # Software emulation by default: the build machine's nested KVM was seen to fail
    # ('-cpu host': MSR error; default CPU: emulation failure). BOOT_KVM=1 to try it.
    kvm = (["-enable-kvm", "-cpu", "host"] if os.environ.get("BOOT_KVM") == "1"
           else ["-cpu", "max"])
    kernel = sorted((TREE / "boot").glob("vmlinuz-*"))[-1]
    initrd = TREE / "boot" / kernel.name.replace("vmlinuz-", "initrd.img-")
    qemu = ["qemu-system-x86_64", *kvm, "-m", "1024", "-smp", "2", "-nographic",
            "-no-reboot", "-nic", "none",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", f"root=/dev/vda {cmdline} systemd.show_status=1",
            "-drive", f"file={work / 'root.img'},format=raw,if=virtio,readonly=on",
            "-drive", f"file={work / 'data.img'},format=raw,if=virtio"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(qemu[0], qemu)
    started = time.monotonic()
    log = bytearray()
    logfile = open(os.environ.get("BOOT_LOG", "/tmp/appliance-image/boot.log"), "wb")

    def expect(pattern: str, limit: float) -> float:
        rx = re.compile(pattern.encode())
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if rx.search(log):
                return time.monotonic() - started
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                log.extend(chunk)
                logfile.write(chunk)
                logfile.flush()
        raise TimeoutError(f"no {pattern!r} on the serial port after {time.monotonic() - started:.0f} s")

    def send(text: str) -> None:
        log.clear()
        os.write(fd, text.encode())

    results = []
    try:
        t = expect(r"not initialised, not recording", TIMEOUT)
        results.append(f"first-boot notice on the console at {t:.0f} s")
        t = expect("保守コンソール", TIMEOUT)
        t = expect("保守> ", 60)
        results.append(f"`appliance console` banner and prompt at {t:.0f} s")
        send("help\r")
        expect(r"保守> ", 30)
        results.append(f"console answers 'help' ({len(log.decode(errors='replace').splitlines())} lines)")
        send("status\r")
        expect(r"保守> ", 60)
        results.append("console answers 'status'")
        ok = True
    except TimeoutError as exc:
        results.append(f"FAIL {exc}")
        ok = False
    finally:
        os.write(fd, b"\x01x")          # qemu: Ctrl-A x quits
        time.sleep(1)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        logfile.close()
    for r in results:
        print(("ok    " if not r.startswith("FAIL") else "") + r)
    print(f"{sum(not r.startswith('FAIL') for r in results)} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
