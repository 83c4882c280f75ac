"""The Lua scripts of RedisBackend and FakeBackend: their names, sources (each prefixed with
``_common.lua`` and ``_dependencies.lua``) and SHA1s, read once from ``backends/lua``."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Final

__all__ = ["SCRIPT_NAMES", "SHAS", "SOURCES"]

SCRIPT_NAMES: Final = (
    "enqueue",
    "move_due",
    "claim",
    "acquire_locks",
    "heartbeat",
    "complete",
    "complete_claim",
    "fail",
    "requeue_expired",
    "queue_slot",
    "remove",
    "move",
    "purge_errors",
    "result",
    "status",
)


def _script_sources() -> dict[str, str]:
    folder = resources.files("typedtiger.backends") / "lua"
    common = "".join(
        (folder / name).read_text(encoding="utf8") for name in ("_common.lua", "_dependencies.lua")
    )
    return {
        name: common + (folder / f"{name}.lua").read_text(encoding="utf8") for name in SCRIPT_NAMES
    }


SOURCES: Final = _script_sources()
SHAS: Final = {
    name: hashlib.sha1(source.encode("utf8"), usedforsecurity=False).hexdigest()
    for name, source in SOURCES.items()
}
