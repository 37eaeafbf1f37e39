"""One background round at a time, its state readable while it runs and after it failed."""

from __future__ import annotations

import threading

from huale.serve.training import BackgroundRound


def test_one_round_at_a_time_and_its_states():
    release = threading.Event()
    finished = []
    rounds = BackgroundRound(on_finish=finished.append)
    assert rounds.state() == {"state": "idle"}
    first = rounds.start(lambda: release.wait(10) and 7)
    assert first.started and first.state["state"] == "running"
    second = rounds.start(lambda: 8)
    assert not second.started and second.state["run"] == 1
    assert rounds.running
    release.set()
    assert rounds.wait(10)
    state = rounds.state()
    assert state["state"] == "finished" and state["result"] == 7 and finished == [7]
    assert "finished_at" in state and state["seconds"] >= 0
    third = rounds.start(lambda: 9)
    assert third.started and third.state["run"] == 2
    rounds.wait(10)
    assert finished == [7, 9]


def test_a_failing_round_is_reported_and_the_next_can_start():
    def broken():
        raise RuntimeError("disk full")

    rounds = BackgroundRound()
    rounds.start(broken)
    rounds.wait(10)
    state = rounds.state()
    assert state["state"] == "failed" and state["error"] == "RuntimeError: disk full"
    assert rounds.start(lambda: 1).started
    rounds.wait(10)
    assert rounds.state()["state"] == "finished"


def test_a_failing_on_finish_marks_the_round_failed():
    def reload(result):
        raise ValueError("bad checkpoint")

    rounds = BackgroundRound(on_finish=reload)
    rounds.start(lambda: 1)
    rounds.wait(10)
    assert rounds.state()["state"] == "failed" and "bad checkpoint" in rounds.state()["error"]
