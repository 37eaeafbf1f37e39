"""The report's machine check: records name their machine; a seed whose arms ran on different
machines is flagged, seeds each on their own machine are not."""

from __future__ import annotations

import logging

import torch

from huale.engine.loop import MACHINE_KEYS, environment, machine_fingerprint
from huale.reports import CycleRecord, load_records, write_report
from huale.reports.machines import describe, machines_by_seed, machines_markdown, mixed_seeds

FAST = {"device": "cpu", "cpu": "AMD EPYC", "cpu_capability": "AVX512", "cpu_threads": 1,
        "torch": "2.14.1", "torchvision": "0.29.1"}
SLOW = dict(FAST, cpu_capability="AVX2")


def _records(machines: dict[tuple[str, int], dict | None]) -> list[CycleRecord]:
    return [
        CycleRecord(strategy=strategy, seed=seed, cycle=cycle, num_labeled=10 * (cycle + 1),
                    metrics={"voc": {"mAP": 0.1 * (cycle + 1), "per_class": {}}}, machine=machine)
        for (strategy, seed), machine in machines.items() for cycle in range(2)
    ]


def test_the_fingerprint_is_the_environment_entries_results_depend_on():
    env = environment(torch.device("cpu"))
    found = machine_fingerprint(torch.device("cpu"))
    assert found == {k: env[k] for k in MACHINE_KEYS if k in env}
    assert {"cpu", "cpu_capability", "cpu_threads", "torch", "torchvision"} <= set(found)
    assert "platform" not in found and "huale" not in found  # kernel/huale versions do not pair


def test_one_machine_is_one_line():
    records = _records({("random", 0): FAST, ("huale", 0): FAST, ("random", 1): FAST,
                        ("huale", 1): FAST})
    assert mixed_seeds(records) == {}
    assert machines_markdown(records).splitlines()[-1] == (
        "Every record ran on one machine: AMD EPYC (AVX512), 1 thread, torch 2.14.1.")


def test_seeds_each_on_their_own_machine_pair_soundly():
    records = _records({("random", 0): FAST, ("huale", 0): FAST, ("random", 1): SLOW,
                        ("huale", 1): SLOW})
    assert mixed_seeds(records) == {}
    text = machines_markdown(records)
    assert "- A: AMD EPYC (AVX2)" in text and "- B: AMD EPYC (AVX512)" in text
    assert "(seed 0: B, seed 1: A)" in text and "Each seed's records come from one machine" in text
    assert "Warning" not in text


def test_a_seed_mixing_machines_is_flagged_in_the_report_and_the_log(tmp_path, caplog):
    records = _records({("random", 0): FAST, ("huale", 0): FAST, ("random", 1): FAST,
                        ("huale", 1): SLOW, ("entropy", 1): None})
    assert list(mixed_seeds(records)) == [1]
    assert machines_by_seed(records)[1] == [FAST, SLOW]
    text = machines_markdown(records)
    assert "seed 1: A+B" in text
    assert "**Warning:** the records of seed 1 come from more than one machine" in text
    assert "2 records name no machine" in text
    for r in records:
        r.write(tmp_path)
    with caplog.at_level(logging.WARNING, logger="huale.reports.report"):
        paths = write_report([tmp_path])
    assert "**Warning:** the records of seed 1" in paths["markdown"].read_text()
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("seed 1: records from 2 machines")


def test_records_without_machines_leave_the_report_as_it_was(tmp_path):
    """Records written before the field: no section (reports of old runs regenerate as they
    were), and the records still load."""
    records = _records({("random", 0): None, ("huale", 0): None})
    assert machines_markdown(records) == ""
    for r in records:
        r.write(tmp_path)
    assert all(r.machine is None for r in load_records([tmp_path]))
    assert "Machines" not in write_report([tmp_path])["markdown"].read_text()


def test_describe_names_a_gpu():
    assert describe({"device": "cuda:0", "gpu": "NVIDIA H200", "torch": "2.11"}) == (
        "NVIDIA H200, torch 2.11")
