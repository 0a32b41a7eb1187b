"""Helper run inside ``unshare --mount --propagation private``.

    python -m dib.blockdev._nsexec --bind EMPTY:TARGET [...] -- CMD [ARGS...]

Bind-mounts each EMPTY directory over TARGET (hiding a nested mount point's
contents from the parent filesystem), then replaces itself with CMD.  The
mounts live only in this private namespace: they vanish with the process.
"""
from __future__ import annotations

import os
import sys

from dib.runner import run


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: _nsexec --bind SRC:DST ... -- CMD ...", file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, cmd = argv[:split], argv[split + 1:]
    binds = []
    while opts:
        flag = opts.pop(0)
        if flag != "--bind" or not opts:
            print(f"_nsexec: unexpected argument {flag!r}", file=sys.stderr)
            return 2
        src, _, dst = opts.pop(0).partition(":")
        binds.append((src, dst))
    for src, dst in binds:
        run(["mount", "--bind", src, dst], what="bind mount over a nested mount point")
    os.execvp(cmd[0], cmd)
    return 127  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
