"""What a verdict covers: the caveats a PASS must carry when the run audited less than a full
audit would (DESIGN.md: a gate never claims more than was audited)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# The audit families a default `pytest audits/` runs; the map audits are all but labels.
FAMILIES = ("labels", "localisation", "sanity", "stability", "faithfulness")
MAP_FAMILIES = FAMILIES[1:]
FEW_IMAGES = 10  # below this many audited images the bootstrap intervals are wide: say so


def family_of(module_name: str) -> str:
    """``audits/test_sanity.py`` → ``sanity``; a user's own module keeps its name."""
    stem = module_name.rsplit("/", 1)[-1].removesuffix(".py")
    return stem.removeprefix("test_")


def caveats(selected: Iterable[str], statuses: Iterable[tuple[str, str]],
            images: Mapping[str, Any]) -> list[str]:
    """One line per limit of this run's pass.

    Args:
        selected: the audit family of every collected audit test.
        statuses: (family, status) of every recorded check.
        images: results.json's "images" (count, rejected, audited).
    """
    chosen = set(selected)
    ran = {family for family, status in statuses if status != "skipped"}
    out = []
    if chosen and not ran & set(MAP_FAMILIES):
        out.append("labels only; no map audit ran" if "labels" in ran else "no map audit ran")
    for family in MAP_FAMILIES:
        if family in chosen and family not in ran and ran & set(MAP_FAMILIES):
            out.append(f"{family}: every check was skipped")
    left = [f for f in FAMILIES if f not in chosen]
    if chosen and left:
        out.append(f"restricted to {', '.join(f for f in FAMILIES if f in chosen) or 'other audits'}; "
                   f"not selected: {', '.join(left)}")
    count, rejected = images.get("count"), len(images.get("rejected") or ())
    if rejected and isinstance(count, int):
        out.append(f"{rejected} of {count + rejected} rows rejected")
    audited = images.get("audited", count)
    if isinstance(audited, int) and audited < FEW_IMAGES:
        out.append(f"only {audited} image(s) audited")
    return out


def scope(images: Mapping[str, Any]) -> str:
    """"on 64 images" for the verdict line and the badge."""
    audited = images.get("audited", images.get("count"))
    return f"on {audited} images" if isinstance(audited, int) else ""
