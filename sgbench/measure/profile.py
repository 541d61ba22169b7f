"""`sgbench profile`: parameters, operations, energy and latency of a model without training it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import resolve_task
from ..data import build_data, step_shape
from ..data.location import DataContext
from ..errors import UsageError, UserError
from ..params import parse_params
from ..models import build_model
from ..registry import load_method
from ..data.loading import first_samples
from .inference import headline, measure_inference
from .ops import EnergyModel


def load_checkpoint(model: torch.nn.Module, path: Path, device: torch.device) -> None:
    """A state_dict, or a dict holding one under 'model'."""
    if not Path(path).is_file():
        raise UserError(f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or pickled objects a safe load refuses
        raise UserError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(f"checkpoint {path} does not fit this task's model: "
                        f"{str(exc).splitlines()[0]}") from None


def profile(task: str | None, method: str | None, T: int | None, device: torch.device,
            checkpoint: Path | None = None, params: list[str] = (), overrides: list[str] = (),
            energy: str = "45nm-fp32", repeats: int = 30, data_dir: Path | None = None,
            record: Path | None = None) -> dict[str, Any]:
    """The model of a task and method, with random weights (seed 0), the weights of a
    checkpoint, or (``record``) the final weights of a finished run, built from its record."""
    if record is not None:
        cfg, method_cls, method_params, checkpoint = _from_record(record, method)
    else:
        if task is None or method is None:
            raise UsageError("profile needs --task and --method, or --record")
        method_cls = load_method(method)
        method_params = parse_params(method_cls, list(params))
        cfg = resolve_task(task, T=T, overrides=list(overrides))
    energy_model = EnergyModel.parse(energy)
    data = build_data(cfg["data"], DataContext.resolve(data_dir, False, cfg["T"]))
    torch.manual_seed(0)
    model = build_model(cfg["model"], cfg["neuron"],
                        step_shape(data.input_shape, cfg["data"]["encoding"]), data.num_classes)
    method_cls(method_params).attach(model, cfg["T"])
    model.to(device)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, device)
    x = first_samples(data.test, cfg["eval"]["batch_size"], device)
    measured = measure_inference(model, x, cfg["T"], cfg["data"]["encoding"], energy_model,
                                 repeats)
    flat = headline(measured)
    return {"task": cfg["name"], "method": method_cls.name, "T": cfg["T"],
            "weights": str(checkpoint) if checkpoint else RANDOM,
            "parameters": sum(p.numel() for p in model.parameters()),
            **flat["metrics"], **flat["cost"], "energy_model": measured["ops"]["energy_model"],
            "layers": measured["ops"]["layers"], "latency": measured["latency"]}


RANDOM = "random init (seed 0)"


def _from_record(path: Path, method: str | None = None):
    """A run's resolved config, method, parameters and final checkpoint, from its record. A
    record is data: the method is loaded by its registered name, or from the ``method`` the
    user names, never from a file the record names, and its source must be the record's."""
    from ..files import safe_name
    from ..record import read_record
    from ..registry import method_source_sha256

    record = read_record(path)
    name = record.get("checkpoint")
    if not name:
        raise UserError(f"{path}: the run kept no checkpoint to profile")
    if not isinstance(name, str) or safe_name(name) != name:
        raise UserError(f"{path}: its checkpoint name {str(name)[:80]!r} is not a file name")
    checkpoint = Path(path).parent / name
    if not checkpoint.is_file():
        raise UserError(f"{path}: its checkpoint {checkpoint} is not beside it any more")
    origin = record["method"].get("origin") or {}
    if origin.get("kind") == "file" and method is None:
        raise UsageError(f"{path}: its method came from the file {origin.get('where')}; a record "
                         f"never runs code, so name the file yourself: --method PATH")
    method_cls = load_method(method or record["method"]["name"])
    if method_source_sha256(method_cls) != record["method"].get("source_sha256"):
        raise UserError(f"{path}: method '{method_cls.name}' here is not the version that ran "
                        f"(its source hash differs)")
    try:
        params = method_cls.Params(**record["method"]["params"])
    except TypeError as exc:  # a parameter the method here does not have
        raise UserError(f"{path}: its method parameters do not fit method '{method_cls.name}' "
                        f"here ({exc})") from None
    return _resolved_config(path, record["task"]["config"]), method_cls, params, checkpoint


def _resolved_config(path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The record's resolved task config, checked as a task file is (every section there)."""
    from ..config import DEFAULTS, validate

    missing = [key for key in DEFAULTS if key not in cfg]
    if missing:
        raise UserError(f"{path}: its task config lacks {', '.join(map(repr, missing[:4]))}; it "
                        f"cannot rebuild the run's model")
    validate(cfg, f"{path} (task config)")
    return cfg
