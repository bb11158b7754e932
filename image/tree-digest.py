#!/usr/bin/env python3
"""One line per path of a built tree: type, mode, owner, size, SHA-256 or link
target, mtime. Two builds are identical when these listings are; `diff` of two
listings shows exactly what differs (README "Reproducibility")."""

import hashlib
import os
import stat
import sys


def main(root: str) -> None:
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = "/" + os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
                what = f"f {st.st_size} {h.hexdigest()}"
            elif stat.S_ISLNK(st.st_mode):
                what = f"l {os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                what = "d"
            else:
                what = f"o {st.st_rdev}"
            rows.append(f"{rel} {stat.S_IMODE(st.st_mode):04o} {st.st_uid}:{st.st_gid} "
                        f"{int(st.st_mtime)} {what}")
    rows.sort()
    sys.stdout.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
