"""The ``agentcache`` command's entry point; prints how to install the ``cli`` extra if it is missing.

The commands themselves live in ``cli._app`` (click + rich), imported only here and only when the
command runs, so ``import agentcache`` never needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..stores.base import Store

__all__ = ["INSTALL_HINT", "main"]

INSTALL_HINT = (
    'the agentcache command needs its optional dependencies (click, rich): pip install "agentcache[cli]"'
)


def main(argv: Sequence[str] | None = None, *, store: Store | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    ``store`` runs the commands against a store the caller already holds (e.g. a ``memory://``
    store in the same process) instead of opening ``--url``; it is left open.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from ._app import run
    except ImportError as exc:
        if exc.name not in ("click", "rich") and not str(exc.name).startswith(("click.", "rich.")):
            raise
        if args == ["--version"]:  # answered without the extra: a bug report needs it most
            from .._version import __version__

            sys.stdout.write(f"agentcache {__version__}\n")
            return 0
        sys.stderr.write(f"agentcache: {INSTALL_HINT}\n")
        return 2
    return run(args, store=store)
