"""The run loop is put together from parts (detector/streaming/runner.py, rebalance.py,
guard.py): a part declares what it calls on the runner as a stub, and no stub may hide the
method that does the work."""

from __future__ import annotations

import inspect

from detector.streaming.guard import Guarded
from detector.streaming.idleness import Idleness
from detector.streaming.rebalance import Rebalancing
from detector.streaming.runner import _Runner


def _stubs(part: type) -> set[str]:
    """The methods of ``part`` that only raise NotImplementedError."""
    return {
        name
        for name, fn in vars(part).items()
        if inspect.isfunction(fn) and "raise NotImplementedError" in inspect.getsource(fn)
    }


def test_no_stub_of_a_part_hides_the_runner_method_it_stands_for() -> None:
    for part in (Guarded, Idleness, Rebalancing):
        stubs = _stubs(part)
        assert stubs, f"{part.__name__} declares what it calls"
        for name in stubs:
            resolved = getattr(_Runner, name)
            assert "raise NotImplementedError" not in inspect.getsource(resolved), (
                f"_Runner.{name} resolves to a stub ({resolved.__qualname__})"
            )


def test_the_rebalance_callbacks_are_the_rebalance_part() -> None:
    for name in ("_assigned", "_revoke", "_lose", "_fenced", "_forget", "_share"):
        assert getattr(_Runner, name) is vars(Rebalancing)[name]
