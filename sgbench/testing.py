"""The method contract check, shipped: ``sgbench check-method NAME|PATH`` and ``check_method(cls)``.

Each check runs the method's own rules on a small spiking CNN and reports what it found:

- parameters: ``Params`` is a dataclass whose defaults pass their declared bounds and survive a
  ``--param`` and a JSON round trip;
- rules: every layer gets theta [T] and p [T, P], finite; spikes are exactly H >= theta;
- surrogate: g >= 0 and finite over |x| <= 1e4, zero outside the declared support and positive
  somewhere inside, its inputs untouched, and the derivative of the primitive (what learnable
  parameters are trained through);
- BPTT: the engine's hand-written backward over T steps against a plain autograd unroll of the
  same dynamics, in float64, for hard and soft, detached and attached resets (gradients of the
  input, and of thresholds and shape parameters where they are learned);
- learnable parameters: every parameter of the model receives a gradient;
- extremes: finite gradients for inputs of size 1e4 and for half-precision input;
- state: a fresh model loading the state_dict gives the same outputs;
- recurrent layer: a layer whose spikes are fed back, run one neuron step at a time: one step
  per timestep, the auxiliary loss, finite gradients through the feedback weights; run as one
  fused sequence where the rule allows it, the same outputs and gradients; the method's adapt
  (a search reruns the layer's BPTT) on it;
- hooks: ``on_epoch_start``, ``adapt`` (with a probe batch), a training step with ``aux_loss``
  and ``param_groups``, ``on_train_batch_end`` and ``search_bounds``, then the rules and the
  surrogate again at the parameters the hooks left;
- bounds: the surrogate at every declared bound of every parameter.

Every check runs at the given parameters (``--param``, default: the method's defaults), and
each has a time limit: a callback that never returns fails its check instead of hanging. Where
the platform can fork, each check runs in a child process that is killed at the limit, so a hook
that catches every exception, or leaves a thread running, cannot outlast it either.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn

from .contract.dynamics import (check_bptt, check_extremes, check_forward, check_learnable,
                                check_recurrent, check_state)
from .contract.model import T, Bound, model_and_method, small_model  # noqa: F401 (the API)
from .contract.surrogate import check_bounds, check_rules, check_rules_of, check_surrogate
from .params import parse_params, problems


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


TIME_LIMIT_S = 60.0  # per check: a callback that never returns fails instead of hanging


class CheckTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout in the block after ``seconds`` (main thread; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum, frame):
        raise CheckTimeout(f"did not return within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_method(cls, params=None, time_limit_s: float = TIME_LIMIT_S) -> list[Check]:
    """Every contract check on the method class ``cls`` at ``params`` (default: its defaults);
    a check that raises, or runs past ``time_limit_s``, fails with the error as its detail."""
    method = Bound(cls, params if params is not None else cls.Params())
    run = _in_child if "fork" in multiprocessing.get_all_start_methods() else _in_process
    return [Check(name, *run(fn, method, time_limit_s)) for name, fn in CHECKS]


def _outcome(fn, method: Bound) -> tuple[bool, str]:
    """(passed, detail) of one check run here."""
    try:
        return True, fn(method) or ""
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is a failed check, one line
        return False, f"{type(exc).__name__}: {exc}"
    except SystemExit as exc:  # sys.exit() in a hook is no success
        return False, f"the method's code called sys.exit({exc.code!r})"


def _in_process(fn, method: Bound, seconds: float) -> tuple[bool, str]:
    """The check in this process, under a SIGALRM limit (code that catches it can outlast it)."""
    try:
        with time_limit(seconds):
            return _outcome(fn, method)
    except CheckTimeout as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _in_child(fn, method: Bound, seconds: float) -> tuple[bool, str]:
    """The check in a forked child, killed at the limit whatever its code does."""
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(fn, method, writer))
    child.start()
    writer.close()
    try:
        if not reader.poll(seconds if seconds > 0 else None):
            return False, f"did not return within {seconds:g} s (its process was stopped)"
        return reader.recv()
    except EOFError:  # the child died without a word (a crash in native code)
        child.join(5)
        return False, f"the check's process ended without a result (exit code {child.exitcode})"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        reader.close()


def _child(fn, method: Bound, writer) -> None:
    torch.set_num_threads(1)
    writer.send(_outcome(fn, method))
    writer.close()
    os._exit(0)  # threads the method left running do not keep the child


def check_params(method: Bound) -> str:
    cls, chosen = method.cls, method.params
    found = problems(cls, cls.Params())
    assert not found, f"the defaults break their own declarations: {'; '.join(found)}"
    values = dataclasses.asdict(chosen)
    typed = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()]
    assert parse_params(cls, typed) == chosen, "--param key=value does not give the value"
    assert cls.Params(**json.loads(json.dumps(values))) == chosen, \
        "a JSON round trip changes them"
    return f"{len(values)} parameters"


def check_hooks(method: Bound) -> str:
    """Every hook as a training run calls it, on a small model and a probe batch: schedules,
    the search, a training step (with the auxiliary loss and the method's parameter groups),
    the after-step hook, the search bounds; then the rules and the surrogate at the
    parameters the hooks produced."""
    from .measure.probe import Probe
    from .train.recipe import make_optimizer

    model, rules = model_and_method(method, dtype=torch.float32)
    torch.manual_seed(2)
    x = torch.rand(T, 8, 1, 6, 6) * 2
    y = torch.randint(0, 3, (8,))
    loss_fn = nn.CrossEntropyLoss()
    probe = Probe(x, y, loss_fn, rules.aux_loss, "check-method")
    optimizer = make_optimizer(model, {"lr": 1e-3, "weight_decay": 0.0, "optimizer": "adam",
                                       "momentum": 0.9}, rules)
    for epoch in range(2):
        rules.on_epoch_start(model, epoch, 2)
        rules.adapt(model, epoch, probe)
        model.train()
        loss = loss_fn(model(x), y)
        aux = rules.aux_loss(model)
        if aux is not None:
            assert torch.is_tensor(aux) and aux.dim() == 0 and torch.isfinite(aux), \
                f"aux_loss gave {aux!r}, not a finite scalar tensor"
            loss = loss + aux
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rules.on_train_batch_end(model, epoch)
        functional.reset_net(model)
    bounds = rules.search_bounds()
    assert isinstance(bounds, dict) and all(
        isinstance(b, tuple) and len(b) == 2 for b in bounds.values()), \
        f"search_bounds gave {bounds!r}, not {{name: (low, high)}}"
    model.double()
    check_rules_of(model)
    check_surrogate(method, model)
    return "on_epoch_start, adapt, aux_loss, param_groups, on_train_batch_end, search_bounds; " \
           "rules and surrogate at the adapted parameters"


CHECKS: list[tuple[str, Callable]] = [
    ("parameters", check_params), ("rules", check_rules), ("exact forward", check_forward),
    ("surrogate", check_surrogate), ("BPTT vs autograd", check_bptt),
    ("learnable parameters", check_learnable),
    ("extreme and half-precision input", check_extremes), ("state round trip", check_state),
    ("recurrent layer", check_recurrent), ("hooks", check_hooks),
    ("parameter bounds", check_bounds)]


def passed(checks: list[Check]) -> bool:
    return all(c.ok for c in checks)
