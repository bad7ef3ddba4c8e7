"""Where a compiled program's memory traffic goes: bytes per instruction of the optimised HLO, by kind and source.

``cost_analysis()["bytes accessed"]`` (XLA's cost model, as the TPU compiler runs it) is one number per program
and does not say in which memory the bytes are. On a TPU the memory-space assignment places some buffers in
on-chip memory (VMEM; their layout carries ``S(1)``): an asynchronous ``copy-start`` prefetches a weight from HBM,
then the matmul reads the copy on chip; only the HBM side of that traffic is bounded by HBM bandwidth. An
in-place ``dynamic-update-slice`` (a KV-cache write of one token) touches one token of its buffer, and a gather
(an embedding lookup) the rows it gathers.

This module re-counts the optimised HLO text (``compiled.as_text()``) in three columns:

- ``all``: every top-level instruction's whole operands + results, wherever they live (not the cost analysis's
  figure, which prices some opcodes by other rules: on the 7B decode step 5.24 GB against its 5.64 GB on
  v5p-64, 8.63 GB against 7.10 GB on v5p-8);
- ``hbm``: only buffers in HBM (memory space 0): a read or write of a buffer in another memory space is not
  HBM traffic; an in-place dynamic-update-slice (or a fusion whose root is one) counts the update it writes, not
  the whole buffer read and written; a gather (or a fusion parameter that only a gather in its body reads) counts
  the rows it gathers, not the whole table. A fusion's operand counts once, whole: a tiled matmul that streams
  an operand from HBM more than once moves more, so this is the traffic the program cannot do without, a lower
  bound, not a simulation;
- ``onchip``: the part of ``all`` in buffers outside HBM (information: the cost analysis does not count them
  all the same way, so its figure less this is not an HBM count).

Rules (every column): the instructions of the entry computation and of the computations that control flow runs
(while bodies and conditions, conditional branches, calls) are counted once each, as the cost analysis counts a
loop body once; fusion bodies and reducers are not walked (the fusion instruction is counted).
``parameter``, ``constant``, ``tuple``, ``get-tuple-element``, ``bitcast`` and the control instructions move
nothing; an asynchronous ``*-start`` counts its operands and the result buffers that are not its operands
(``copy-start``: the source read and the destination written), ``*-done`` nothing.

    python benchmarks/hlo_bytes.py program.hlo.txt [--top 20]

``benchmarks/aot_scale.py --hlo-dir DIR`` writes each program's optimised HLO and adds these counts to its rows.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import re

_BYTES = {
    "pred": 1,
    "s4": 0.5,
    "u4": 0.5,
    "s8": 1,
    "u8": 1,
    "f8e4m3fn": 1,
    "f8e5m2": 1,
    "f8e4m3": 1,
    "f8e4m3fnuz": 1,
    "f8e5m2fnuz": 1,
    "s16": 2,
    "u16": 2,
    "f16": 2,
    "bf16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
    "c64": 8,
    "c128": 16,
}
_ARRAY = re.compile(r"\b(" + "|".join(sorted(_BYTES, key=len, reverse=True)) + r")\[([\d,]*)\](\{[^}]*\})?")
_SPACE = re.compile(r"S\((\d+)\)")
_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_NOTHING = {
    "parameter",
    "constant",
    "tuple",
    "get-tuple-element",
    "bitcast",
    "while",
    "conditional",
    "call",
    "after-all",
    "partition-id",
    "replica-id",
    "opt-barrier",
    "add-dependency",
    "domain",
}
_CONTROL = re.compile(r"\b(?:body|condition|to_apply|true_computation|false_computation)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_CALLS = re.compile(r"\bcalls=%?([\w.\-]+)")
_NAME = re.compile(r"%([\w.\-]+)")


@dataclasses.dataclass
class Array:
    dtype: str
    dims: tuple
    space: int  # 0 = HBM (device memory), 1 = VMEM on TPU, ...

    @property
    def nbytes(self) -> float:
        return math.prod(self.dims) * _BYTES[self.dtype]


@dataclasses.dataclass
class Instr:
    name: str
    opcode: str
    result: list  # the result's arrays (a tuple's elements in order)
    operands: list  # the operands' arrays (their names until parse_module resolves them)
    attrs: str
    root: bool
    names: tuple = ()  # the operands' names
    inner: str = ""  # the text between the opcode's parentheses (a parameter's number)


def arrays(text: str) -> list:
    """Every array shape written in ``text`` (``bf16[4,3584]{1,0:T(8,128)(2,1)S(1)}``), in order."""
    out = []
    for dtype, dims, layout in _ARRAY.findall(text):
        space = _SPACE.search(layout or "")
        out.append(Array(dtype, tuple(int(d) for d in dims.split(",") if d), int(space.group(1)) if space else 0))
    return out


def _balanced(text: str, start: int) -> int:
    """The index just past the bracket group that opens at ``text[start]``."""
    depth, pairs = 0, {"(": ")", "{": "}", "[": "]"}
    closing = set(pairs.values())
    for i in range(start, len(text)):
        c = text[i]
        if c in pairs:
            depth += 1
        elif c in closing:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced brackets in HLO line: {text[:200]!r}")


def parse_instr(line: str) -> Instr | None:
    """One instruction line, or None for anything else (headers, braces, comments)."""
    m = _INSTR.match(line)
    if not m or "(" not in m.group(3):
        return None
    rest = m.group(3)
    end = _balanced(rest, 0) if rest.startswith("(") else rest.index(" ")
    shape, rest = rest[:end], rest[end:].lstrip()
    op = re.match(r"([\w\-]+)\(", rest)
    if not op:
        return None
    close = _balanced(rest, op.end() - 1)
    inner = rest[op.end() : close - 1]
    # operands are printed as ``%name`` (an optimised module) or ``shape %name``: keep the names, resolve later
    names = [] if op.group(1) == "constant" else _NAME.findall(inner)
    return Instr(m.group(2), op.group(1), arrays(shape), names, rest[close:], bool(m.group(1)), tuple(names), inner)


def parse_module(text: str) -> tuple[dict, str]:
    """{computation name: [Instr]} of an HLO module's text, and the entry computation's name."""
    comps, entry, current = {}, None, None
    for line in text.splitlines():
        if current is None:
            h = _HEADER.match(line)
            if h and not line.startswith("HloModule"):
                current = h.group(2)
                comps[current] = []
                if h.group(1):
                    entry = current
            continue
        if line.startswith("}"):
            current = None
            continue
        ins = parse_instr(line)
        if ins is not None:
            comps[current].append(ins)
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    for instrs in comps.values():  # operand names -> the arrays their instructions produce
        results = {i.name: i.result for i in instrs}
        for i in instrs:
            i.operands = [a for name in i.operands for a in results.get(name, [])]
    return comps, entry


def _walked(comps: dict, entry: str) -> list:
    """The entry computation and every computation control flow runs from it (not fusion bodies, not reducers)."""
    seen, todo = [], [entry]
    while todo:
        name = todo.pop()
        if name in seen or name not in comps:
            continue
        seen.append(name)
        for ins in comps[name]:
            if ins.opcode in ("while", "conditional", "call"):
                todo += _CONTROL.findall(ins.attrs)
                for group in _BRANCHES.findall(ins.attrs):
                    todo += [b.strip().lstrip("%") for b in group.split(",") if b.strip()]
    return seen


def _body(comps: dict, ins: Instr) -> list | None:
    body = _CALLS.search(ins.attrs)
    return comps.get(body.group(1)) if ins.opcode == "fusion" and body else None


def _in_place_update(comps: dict, ins: Instr) -> float | None:
    """For a dynamic-update-slice, or a fusion whose body's root is one: the bytes of the update it writes."""
    if ins.opcode == "dynamic-update-slice":
        return ins.operands[1].nbytes if len(ins.operands) > 1 else None
    body = _body(comps, ins)
    roots = [i for i in body or [] if i.root]
    if len(roots) != 1 or roots[0].opcode != "dynamic-update-slice" or len(roots[0].operands) < 2:
        return None
    return roots[0].operands[1].nbytes


def _gathered(comps: dict, ins: Instr) -> dict:
    """{operand index: bytes read} for the operands a gather reads rows of (not the whole operand): a gather's
    table, or a fusion parameter that a gather in its body reads, counts as the gathered rows."""
    if ins.opcode == "gather":
        return {0: sum(a.nbytes for a in ins.result)}
    body = _body(comps, ins)
    if not body:
        return {}
    params = {i.name: int(i.inner) for i in body if i.opcode == "parameter" and i.inner.strip().isdigit()}
    users = collections.Counter(n for i in body for n in i.names)
    out = {}
    for i in body:
        if i.opcode == "gather" and i.names and i.names[0] in params and users[i.names[0]] == 1:
            out[params[i.names[0]]] = sum(a.nbytes for a in i.result)
    return out


def instr_bytes(comps: dict, ins: Instr) -> tuple[float, float, float]:
    """(all, hbm, on-chip) bytes one top-level instruction moves (see the module docstring); on-chip: the part of
    ``all`` in buffers outside HBM."""
    if ins.opcode in _NOTHING or ins.opcode.endswith("-done"):
        return 0.0, 0.0, 0.0
    ops, res = list(ins.operands), list(ins.result)
    if ins.opcode.endswith("-start"):
        if ins.opcode == "copy-start":
            res = res[:1]  # (destination, source, context): the destination is written
        elif res[: len(ops)] == ops:  # (operands..., outputs..., [context]): the operands' buffers are not new
            res = res[len(ops) :]
    total = sum(a.nbytes for a in ops + res)
    hbm = sum(a.nbytes for a in ops + res if a.space == 0)
    onchip = total - hbm
    if len(ops) == len(ins.names):  # one array per operand: the gathered tables are known by position
        for k, rows in _gathered(comps, ins).items():
            if k < len(ops) and ops[k].space == 0:
                hbm += rows - ops[k].nbytes
    update = _in_place_update(comps, ins)
    if update is not None and res and res[0].space == 0:
        buf = res[0]
        hbm -= 2 * buf.nbytes  # the whole buffer read (the aliased operand) and written ...
        hbm += update  # ... is the update written in place (its read is among the operands)
    return total, hbm, onchip


def _source(ins: Instr) -> str:
    m = re.search(r'op_name="([^"]*)"', ins.attrs)
    return m.group(1) if m else f"({ins.opcode})"


def count(text: str) -> dict:
    """Bytes of an optimised HLO module: totals, by opcode (fusions by their kind) and by source op name."""
    comps, entry = parse_module(text)
    by_kind, by_source = collections.Counter(), collections.Counter()
    by_kind_hbm, by_source_hbm = collections.Counter(), collections.Counter()
    total = hbm = onchip = 0.0
    for name in _walked(comps, entry):
        for ins in comps[name]:
            a, h, o = instr_bytes(comps, ins)
            onchip += o
            if not a and not h:
                continue
            kind = ins.opcode
            if kind == "fusion":
                fk = re.search(r"kind=(k\w+)", ins.attrs)
                kind = f"fusion:{fk.group(1)}" if fk else kind
                if _in_place_update(comps, ins) is not None:
                    kind = "fusion:in-place update"
            total, hbm = total + a, hbm + h
            by_kind[kind] += a
            by_kind_hbm[kind] += h
            src = _source(ins)
            by_source[src] += a
            by_source_hbm[src] += h
    return dict(
        all=total,
        hbm=hbm,
        onchip=onchip,
        by_kind=by_kind,
        by_kind_hbm=by_kind_hbm,
        by_source=by_source,
        by_source_hbm=by_source_hbm,
    )


def report(counts: dict, top: int = 20) -> str:
    lines = [
        f"bytes: all {counts['all'] / 1e9:.3f} GB, in HBM {counts['hbm'] / 1e9:.3f} GB, "
        f"of all in on-chip buffers {counts['onchip'] / 1e9:.3f} GB",
        "",
        "| kind | all GB | HBM GB |",
        "|---|---|---|",
    ]
    for k, v in counts["by_kind"].most_common():
        lines.append(f"| {k} | {v / 1e9:.3f} | {counts['by_kind_hbm'][k] / 1e9:.3f} |")
    lines += ["", f"top {top} sources by HBM bytes", "| op_name | all GB | HBM GB |", "|---|---|---|"]
    for k, v in counts["by_source_hbm"].most_common(top):
        lines.append(f"| {k[-110:]} | {counts['by_source'][k] / 1e9:.3f} | {v / 1e9:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hlo", help="an optimised HLO module's text (compiled.as_text())")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args(argv)
    with open(args.hlo) as f:
        print(report(count(f.read()), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
