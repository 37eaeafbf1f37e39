"""Which machines a report's records came from, and whether its paired comparisons are sound.

A paired gain compares a strategy with the baseline of the same seed. On CPUs the same seed run
on two machines (other vector kernels, thread counts or torch versions) differs by points of
mAP, so a seed whose arms ran on different machines compares machines as much as strategies.
Seeds may each run on their own machine (the seed-to-seed spread then includes the machine's);
the arms of one seed must share one. Records written before ``CycleRecord.machine`` existed
name no machine and are left out of this check.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from huale.reports.records import CycleRecord


def _key(machine: dict) -> str:
    return json.dumps(machine, sort_keys=True)


def describe(machine: dict) -> str:
    """One line: ``cpu (AVX2), 1 thread, torch 2.14.1+cu130`` or the GPU's name."""
    threads = machine.get("cpu_threads")
    where = machine.get("gpu") or (
        f"{machine.get('cpu', 'unknown CPU')} ({machine.get('cpu_capability', '?')}), "
        f"{threads} thread{'s' if threads != 1 else ''}")
    return f"{where}, torch {machine.get('torch', '?')}"


def machines_by_seed(records: Sequence[CycleRecord]) -> dict[int, list[dict]]:
    """``{seed: [distinct machines of its records]}`` over the records that name one."""
    found: dict[int, dict[str, dict]] = defaultdict(dict)
    for r in records:
        if r.machine is not None:
            found[r.seed].setdefault(_key(r.machine), r.machine)
    return {seed: list(machines.values()) for seed, machines in sorted(found.items())}


def mixed_seeds(records: Sequence[CycleRecord]) -> dict[int, list[dict]]:
    """The seeds whose records came from more than one machine."""
    return {seed: ms for seed, ms in machines_by_seed(records).items() if len(ms) > 1}


def machines_markdown(records: Sequence[CycleRecord]) -> str:
    """A "Machines" section; empty when no record names its machine."""
    by_seed = machines_by_seed(records)
    if not by_seed:
        return ""
    distinct = {_key(m): m for ms in by_seed.values() for m in ms}
    lines = ["### Machines", ""]
    unnamed = sum(r.machine is None for r in records)
    mixed = mixed_seeds(records)
    if len(distinct) == 1:
        lines.append(f"Every record{' that names one' if unnamed else ''} ran on one machine: "
                     f"{describe(next(iter(distinct.values())))}.")
    else:
        labels = {key: chr(ord("A") + k) for k, key in enumerate(sorted(distinct))}
        lines += [f"- {labels[key]}: {describe(m)}" for key, m in sorted(distinct.items())]
        per_seed = ", ".join(
            f"seed {seed}: {'+'.join(sorted(labels[_key(m)] for m in ms))}"
            for seed, ms in by_seed.items())
        lines += ["", f"The records come from {len(distinct)} machines ({per_seed})."]
        if not mixed:
            lines.append("Each seed's records come from one machine, so every paired comparison "
                         "is between runs of one machine; the spread over seeds includes the "
                         "machines'.")
    if mixed:
        lines += ["", f"**Warning:** the records of seed{'s' if len(mixed) > 1 else ''} "
                  f"{', '.join(map(str, mixed))} come from more than one machine: their paired "
                  "gains compare machines as well as strategies (CPU kernels alone move mAP by "
                  "points). Rerun all the arms of such a seed on one machine."]
    if unnamed:
        plural = unnamed != 1
        lines += ["", f"{unnamed} record{'s' if plural else ''} name{'' if plural else 's'} no "
                  f"machine (written before huale recorded it) and {'are' if plural else 'is'} "
                  "not checked."]
    return "\n".join(lines)
