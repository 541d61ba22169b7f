"""The record of a run: what was asked, built, measured and learned, and where it ran."""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from .. import record as rec
from ..environment import capture_env
from ..checkpoint import run_key_of
from ..config import config_sha256
from ..errors import formatted_traceback
from ..results.flags import search_report
from ..measure.inference import peak_memory_mb
from ..neuron.node import neurons, used_backend
from ..registry import method_source_sha256
from .loop import Outcome
from .setup import RunRequest, Setup


def _summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    tested = [h for h in history if h.get("test_top1") is not None]
    if not tested:
        return {"top1": None, "top1_best": None, "top1_best_epoch": None, "test_loss": None}
    best = max(tested, key=lambda h: h["test_top1"])
    return {"top1": tested[-1]["test_top1"], "top1_best": best["test_top1"],
            "top1_best_epoch": best["epoch"], "test_loss": tested[-1]["test_loss"]}


def _search(setup: Setup, out: Outcome) -> dict[str, Any]:
    """What the method's search chose (empty when it has none, or its bounds cannot be read:
    a plugin's bug there never costs the record)."""
    try:
        bounds = setup.method.search_bounds()
        return search_report(bounds, out.snapshots[-1] if out.snapshots else None)
    except Exception as exc:  # noqa: BLE001 - reported in the record, never fatal
        return {"error": f"search_bounds: {exc}"}


def make_record(req: RunRequest, setup: Setup, out: Outcome, wall_s: float) -> dict[str, Any]:
    cfg, cls, history = setup.cfg, setup.method_cls, out.history
    headline = out.measured["headline"]
    return {
        "schema": rec.SCHEMA,
        "run_id": rec.new_run_id(cfg["name"], cls.name, cfg["T"], req.seed, req.protocol),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": out.status,
        "error": out.error,
        "error_traceback": formatted_traceback(out.exception) if out.exception else None,
        "resumed_from": out.resumed_from,
        "checkpoint": setup.checkpoint.name if setup.checkpoint.is_file() else None,
        "run_key": run_key_of(setup.checkpoint),  # configuration and seed
        "method": {"name": cls.name, "params": dataclasses.asdict(setup.params),
                   "fidelity": cls.fidelity, "kinds": list(cls.kinds), "citation": cls.citation,
                   "source_sha256": method_source_sha256(cls),
                   "origin": cls.origin.as_record(),
                   # what an adaptive search chose per layer after the final epoch
                   "search": _search(setup, out)},
        "task": {"name": cfg["name"], "version": cfg["version"], "config": cfg,
                 "sha256": config_sha256(cfg)},
        "T": cfg["T"],
        "seed": req.seed,
        "protocol": req.protocol,
        "data": setup.data.meta,
        "model": {"arch": cfg["model"]["arch"],
                  "parameters": sum(p.numel() for p in setup.model.parameters()),
                  "neuron_layers": len(neurons(setup.model)),
                  "classes": setup.data.num_classes},
        "precision": dataclasses.asdict(setup.precision),  # what was in effect
        "distributed": {**setup.dist.describe(),
                        "batch_size_per_rank": setup.train_loader.batch_size},
        "paper_overlay": cls.paper_overlay(cfg["data"]["dataset"])
        if req.protocol == "paper" else {},
        "metrics": {**_summary(history), **headline.get("metrics", {})},
        "history": history,
        "diagnostics": {"probe": setup.probe.describe(), "snapshots": out.snapshots},
        "inference": out.measured["inference"],
        "eval_T": out.measured["eval_T"],
        "cost": {"wall_s": wall_s,
                 "train_compute_s": out.compute_s,
                 "train_samples_per_s": out.samples / out.compute_s if out.compute_s > 0
                 else None,
                 "epochs_completed": len(history), **out.timers,
                 "epoch_time_s": statistics.fmean(h["epoch_time_s"] for h in history)
                 if history else None,
                 "peak_memory_mb": peak_memory_mb(setup.device),
                 **headline.get("cost", {})},
        "env": capture_env(setup.device, used_backend(setup.model) or cfg["neuron"]["backend"]),
    }
