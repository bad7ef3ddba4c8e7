"""The registry of the multiple-choice evaluation suites: each suite's reader and the numbers its paper table
reports.

Omni-R1 Table 3 / Table 7 (OmniBench, VideoMME, MVBench; readers in :mod:`omnir1_jax.data.suites_omni`) and
CrossOmni Table 10 (Daily-Omni, WorldSense, AVUT; :mod:`omnir1_jax.data.suites_ood`). The readers build on
:mod:`omnir1_jax.data.mcq` (the record type and shared helpers) and never import this module, so the imports
run one way: registry -> readers -> base.

    records = read_suite("videomme", "data/suites/videomme")    # [MCQRecord], in file order
    suite("videomme").columns                                     # (("VideoMME General", "overall"), ...)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from omnir1_jax.data import suites_omni, suites_ood
from omnir1_jax.data.mcq import MCQRecord


@dataclasses.dataclass(frozen=True)
class Suite:
    """A reader and the numbers its paper table reports (``columns``: label -> summary group of
    :class:`~omnir1_jax.evaluation.metrics.qa.QAAccumulator`; the first is the suite's headline)."""

    name: str
    read: Callable[..., list[MCQRecord]]
    columns: tuple[tuple[str, str], ...]


SUITES: dict[str, Suite] = {
    "omnibench": Suite("omnibench", suites_omni.read_omnibench, (("OmniBench Avg", "overall"),)),
    # Omni-R1 Table 3 / 7: "General" = every question (short + medium + long), "Short" = the short videos
    "videomme": Suite(
        "videomme", suites_omni.read_videomme, (("VideoMME General", "overall"), ("VideoMME Short", "duration=short"))
    ),
    "mvbench": Suite("mvbench", suites_omni.read_mvbench, (("MVBench Avg", "task_mean"),)),
    "dailyomni": Suite("dailyomni", suites_ood.read_dailyomni, (("Daily-Omni", "overall"),)),
    "worldsense": Suite("worldsense", suites_ood.read_worldsense, (("WorldSense", "overall"),)),
    "avut": Suite("avut", suites_ood.read_avut, (("AVUT", "overall"),)),
}

SUITE_NAMES = tuple(SUITES)


def suite(name: str) -> Suite:
    """The registry entry of ``name`` (one of :data:`SUITE_NAMES`)."""
    if name not in SUITES:
        raise ValueError(f"unknown multiple-choice suite {name!r}; known: {SUITE_NAMES}")
    return SUITES[name]


def read_suite(name: str, root: str, **kwargs) -> list[MCQRecord]:
    """Records of suite ``name`` from its release folder ``root`` (see the reader's docstring)."""
    return suite(name).read(root, **kwargs)
