"""`make demo`: the whole story on one machine, no cloud account.

Each step prints what it does; a failing step stops the demo with its error.
"""

from __future__ import annotations

import sys

from pipelines.cli import main as mlship


def _step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def _promote_challenger() -> int:
    """Make the version just registered the champion, so models:/mlship@champion resolves."""
    from pipelines.registry import RegistrySettings, aliased

    challenger = aliased(RegistrySettings.from_env(), alias="challenger")
    if challenger is None:
        return 0
    print(f"\n$ mlship promote {challenger.version}", flush=True)
    code = mlship(["promote", challenger.version])
    if code == 0:
        code = mlship(["models"])
    return code


def main() -> int:
    _step("1. Train, evaluate, gate, bundle and register the default model")
    code = mlship(["train"])
    if code != 0:
        return code
    code = _promote_challenger()
    if code != 0:
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
