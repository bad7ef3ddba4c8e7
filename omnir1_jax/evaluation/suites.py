"""Several multiple-choice suites in one evaluation, summarised as one row of the paper's table.

Omni-R1 Table 3 (OmniBench Avg, VideoMME General / Short, MVBench Avg) and CrossOmni Table 10 (Daily-Omni,
WorldSense, AVUT, Average) are each one command: every suite is evaluated by the one multiple-choice
evaluator (:func:`omnir1_jax.evaluation.loop.evaluate_qa`, resumable, into ``<out>/<suite>/``) and
``<out>/summary.json`` / ``summary.md`` give the row: one column per number the paper reports
(:class:`omnir1_jax.data.suites.Suite.columns`), x100 like the paper, and ``Average`` (the mean of each
suite's first column, as Table 10's last column) when there is more than one suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from omnir1_jax.data.suites import read_suite, suite
from omnir1_jax.evaluation.loop import evaluate_qa
from omnir1_jax.evaluation.results import write_json_atomic


def columns_of(name: str, table: dict | None) -> dict[str, float | None]:
    """The paper's numbers of suite ``name`` from its summary ``table`` (accuracy, a fraction; None where
    the group has no question yet)."""
    out = {}
    for label, group in suite(name).columns:
        out[label] = float(table[group]["accuracy"]) if table and group in table else None
    return out


def row_markdown(columns: dict[str, float | None]) -> str:
    """One Markdown table row of ``columns`` x100 with one decimal, as Tables 3 and 10 print them."""
    head = "| " + " | ".join(columns) + " |"
    vals = "| " + " | ".join("-" if v is None else f"{100 * v:.1f}" for v in columns.values()) + " |"
    return "\n".join([head, "|" + " --- |" * len(columns), vals])


def evaluate_suites(
    sources: Sequence[tuple[str, str]],
    answer: Callable[[Sequence[Any]], Iterable],
    out_dir: str,
    *,
    resume: bool = True,
    max_items: int | None = None,
    progress: bool = True,
    read_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Evaluate each ``(suite name, release folder)`` of ``sources`` with ``answer(records)`` (yields
    ``(record, completion)``) and write the row (module docstring).

    ``max_items`` bounds the new questions per suite. Returns ``{"kind": "suites", "columns",
    "suites": {name: evaluate_qa's result}, "markdown", "done", "total"}``.
    """
    os.makedirs(out_dir, exist_ok=True)
    results: dict[str, dict] = {}
    columns: dict[str, float | None] = {}
    heads: list[float | None] = []
    for name, root in sources:
        records = read_suite(name, root, **(read_kwargs or {}))
        res = evaluate_qa(
            records, answer, os.path.join(out_dir, name), resume=resume, max_items=max_items, progress=progress
        )
        results[name] = res
        cols = columns_of(name, res["table"])
        heads.append(next(iter(cols.values())))
        columns.update(cols)
    if len(sources) > 1:
        columns["Average"] = None if any(h is None for h in heads) else float(np.mean(heads))
    md = [row_markdown(columns)]
    for name, res in results.items():
        md += ["", f"### {name} ({res['done']}/{res['total']} questions)", "", res["markdown"]]
    result = {
        "kind": "suites",
        "columns": columns,
        "suites": results,
        "markdown": "\n".join(md),
        "done": sum(r["done"] for r in results.values()),
        "total": sum(r["total"] for r in results.values()),
    }
    write_json_atomic(os.path.join(out_dir, "summary.json"), result)
    write_json_atomic(os.path.join(out_dir, "summary.md"), None, result["markdown"] + "\n")
    return result
