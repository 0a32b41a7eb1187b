"""DIB's rule for a case's verdict: a build that fails passes only when the
target held ``/tmp/dib-test-should-fail`` at the failure, one that succeeds
fails if its image still holds it; and why a failed build failed, from its
report."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from dib.runtime.tree import path_in_layers
from dib.testing.results import FAIL, PASS, TAIL_LINES

SENTINEL = "tmp/dib-test-should-fail"


# -- the sentinel --------------------------------------------------------------


def sentinel_in_layers(layers_top_first: Iterable[Path], sentinel: str = SENTINEL) -> bool:
    """Whether ``sentinel`` exists in the tree the overlay ``layers`` make."""
    return path_in_layers(layers_top_first, sentinel)


def failed_build_layers(workspace: Path, report: Mapping[str, Any] | None,
                        cache_dir: Path | None) -> list[Path]:
    """The layers of a failed build, top first: each step's layer from the
    phase cache if it is there, else from the workspace."""
    local: dict[str, list[Path]] = {}
    numbered = []
    for path in (workspace / "layers").glob("[0-9]*-*"):
        number, _, name = path.name.partition("-")
        if number.isdigit() and path.is_dir():
            numbered.append((int(number), name, path))
    for _number, name, path in sorted(numbered):
        local.setdefault(name, []).append(path)
    if not report or not report.get("steps"):
        return [p for _n, _name, p in sorted(numbered, reverse=True)]
    stack: list[Path] = []
    for step in report["steps"]:
        name, key = step.get("name", ""), step.get("key", "")
        cached = cache_dir / "phases" / "entries" / key / "layer" if cache_dir and key else None
        if cached is not None and cached.is_dir():
            stack.append(cached)
        elif local.get(name):
            stack.append(local[name].pop(0))
    return list(reversed(stack))


def tar_has_sentinel(tar_path: Path, sentinel: str = SENTINEL) -> bool:
    from dib.testing.imagetree import TarTree
    with TarTree(tar_path) as image:
        return image.lexists(sentinel)


def decide(build_status: int, *, sentinel_at_failure: bool, sentinel_in_output: bool
           ) -> tuple[str, str, bool]:
    """DIB's rule → (status, reason, expected_failure)."""
    if build_status == 0:
        if sentinel_in_output:
            return FAIL, f"the build should have failed but passed (/{SENTINEL} is in the " \
                         "image)", False
        return PASS, "", False
    if sentinel_at_failure:
        return PASS, "failed as expected", True
    return FAIL, "the build failed", False


# -- why the build failed ---------------------------------------------------------


def explain_failure(report: Mapping[str, Any] | None, log_text: str, *,
                    hook_timeout: float) -> tuple[str, str, str]:
    """(one-line reason, details, failing hook as PHASE/NAME) from the
    structured failure in the build's JSON report; without one (the build
    died before writing it), the log's last lines."""
    failure = (report or {}).get("failure")
    if not failure:
        return "the build failed", "\n".join(log_text.splitlines()[-TAIL_LINES:]), ""
    message = failure.get("message") or "the build failed"
    details = "\n".join(part for part in (message, failure.get("output_tail") or "") if part)
    if not failure.get("hook"):
        return message, details, ""
    hook = f"{failure.get('phase')}/{failure['hook']}"
    if failure.get("timed_out"):
        limit = f"{hook_timeout:g}"
        return (f"hook {hook} of element '{failure.get('element')}' timed out after "
                f"{limit} s", details, hook)
    return message, details, hook
