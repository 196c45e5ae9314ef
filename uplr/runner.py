"""Run a DVC stage's command on the host or inside the pinned image.

Every stage command in dvc.yaml is ``python -m uplr.runner -- <command>``. With ``UPLR_RUNNER`` unset
or ``local`` the command runs directly (exec, so signals and the exit status pass through);
``UPLR_RUNNER=docker`` runs it in the image (see uplr/docker_runner.py).
"""

from __future__ import annotations

import os
import shutil
import sys

from uplr.errors import UplrError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("usage: python -m uplr.runner -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    mode = os.environ.get("UPLR_RUNNER", "local")
    if mode == "local":
        exe = shutil.which(argv[0])
        if exe is None:
            print(f"uplr.runner: error: command {argv[0]!r} not found on PATH; activate the venv "
                  "(source .venv/bin/activate) or run through make", file=sys.stderr)
            return 127
        os.execv(exe, argv)
    if mode == "docker":
        from uplr import docker_runner

        try:
            return docker_runner.run(argv)
        except UplrError as exc:
            print(f"uplr.runner: error: {exc}", file=sys.stderr)
            return 2
    print(f"uplr.runner: error: UPLR_RUNNER must be 'local' or 'docker', got {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
