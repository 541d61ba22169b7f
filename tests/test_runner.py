import json

import pytest

from sgbench.errors import UsageError, UserError
from sgbench.record import SCHEMA, load_records, write_record
from sgbench.registry import builtin_names, load_method
from sgbench.train import RunRequest, run
from fixtures import method_file as _method_file


def _run(tmp_path, **kwargs):
    kwargs.setdefault("method", "atan")
    kwargs.setdefault("task", "synthetic")
    return run(RunRequest(out_dir=tmp_path, device="cpu", **kwargs))


def test_record_has_the_documented_fields(tmp_path):
    record, path = _run(tmp_path)
    assert path.exists() and json.loads(path.read_text())["run_id"] == record["run_id"]
    assert record["schema"] == SCHEMA and record["status"] == "ok"
    assert set(record["method"]) >= {"name", "params", "fidelity", "source_sha256"}
    assert set(record["task"]) >= {"name", "version", "config", "sha256"}
    assert set(record["metrics"]) >= {"top1", "top1_best", "top1_best_epoch", "test_loss"}
    assert set(record["cost"]) >= {"wall_s", "train_samples_per_s"}
    env = record["env"]
    assert set(env) >= {"sgbench", "python", "torch", "spikingjelly", "device", "neuron_backend",
                        "git"}
    assert "hostname" not in json.dumps(record).lower()
    assert len(record["history"]) == 3 and record["metrics"]["top1"] == record["history"][-1][
        "test_top1"]


def test_same_seed_gives_identical_metrics(tmp_path):
    first, _ = _run(tmp_path / "a", seed=3)
    second, _ = _run(tmp_path / "b", seed=3)  # a folder of its own: the first is finished
    other, _ = _run(tmp_path / "a", seed=4)
    assert first["metrics"] == second["metrics"]
    assert [h["train_loss"] for h in first["history"]] == [h["train_loss"] for h in second["history"]]
    assert [h["train_loss"] for h in first["history"]] != [h["train_loss"] for h in other["history"]]


def test_non_finite_loss_ends_the_run_as_diverged(tmp_path):
    method = _method_file(tmp_path, "nan_aux", """
        def aux_loss(self, model):
            return torch.tensor(float("nan"))
    """)
    record, path = _run(tmp_path / "runs", method=str(method))
    assert record["status"] == "diverged" and record["metrics"]["top1"] is None
    assert len(record["history"]) == 1 and path.exists()


@pytest.mark.parametrize("kwargs,error", [
    ({"method": "atnn"}, UsageError), ({"T": 0}, UsageError), ({"task": "digts"}, UsageError),
    ({"params": ["alpa=1"]}, UsageError), ({"overrides": ["train.epoch=1"]}, UsageError),
    ({"overrides": ["model.chanels=[4]"]}, UserError),
])
def test_bad_input_fails_before_writing_anything(tmp_path, kwargs, error):
    out = tmp_path / "runs"
    with pytest.raises(error):
        _run(out, **kwargs)
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_out_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write records"):
        _run(blocker / "runs")


def test_records_are_never_overwritten_and_corrupt_files_are_reported(tmp_path):
    record, path = _run(tmp_path)
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "other_tool.json").write_text('{"some": "thing"}')
    records, problems = load_records(tmp_path)
    assert [r["run_id"] for r in records] == [record["run_id"]]
    assert len(problems) == 1 and "garbage.json" in problems[0]
    with pytest.raises(UserError, match="already exists"):
        write_record(record, tmp_path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))


@pytest.mark.parametrize("method", ["atan", "rect"])
def test_a_baseline_learns_digits(tmp_path, method):
    """A baseline reaches >= 90% top-1 on digits at T=4 with default settings. (Every method's
    number on digits is pinned by the digits reference suite, which CI runs: `sgbench reference
    run --suite digits` and `sgbench regress`.)"""
    record, _ = _run(tmp_path, method=method, task="digits", T=4)
    assert record["status"] == "ok"
    assert record["metrics"]["top1"] >= 90.0, record["metrics"]


def test_a_crash_mid_training_still_writes_a_failed_record(tmp_path):
    method = _method_file(tmp_path, "crash", """
        def on_epoch_start(self, model, epoch, epochs):
            if epoch == 1:
                raise RuntimeError("boom")
    """)
    out = tmp_path / "runs"
    with pytest.raises(UserError, match="training failed: RuntimeError: boom"):
        _run(out, method=str(method))
    (record,), _ = load_records(out)
    assert record["status"] == "failed" and "boom" in record["error"]
    assert len(record["history"]) == 1


def test_diagnostics_are_recorded_without_changing_training(tmp_path):
    plain, _ = _run(tmp_path / "plain", method="ds_atgo", seed=1)
    probed, _ = _run(tmp_path / "probed", method="ds_atgo", seed=1, diag_every=1)
    assert [h["train_loss"] for h in plain["history"]] == [h["train_loss"] for h in
                                                            probed["history"]]
    assert [s["epoch"] for s in plain["diagnostics"]["snapshots"]] == [3]
    assert [s["epoch"] for s in probed["diagnostics"]["snapshots"]] == [1, 2, 3]
    snap = probed["diagnostics"]["snapshots"][-1]
    assert snap == plain["diagnostics"]["snapshots"][-1] | {"epoch": 3}
    (layer,) = snap["layers"]
    T = probed["T"]
    for key in ("spike_rate", "coverage", "coverage_vanilla", "h_mean", "h_std", "theta"):
        assert len(layer[key]) == T and all(v == v for v in layer[key]), key
    assert len(layer["p"]) == T and len(layer["p"][0]) == len(layer["p_names"]) == 4
    assert layer["sgv"] > 0 and -1 <= layer["tgc"] <= 1 and layer["cv"] > 0
    assert layer["grad_norm"] > 0 and layer["gamma_mean"] is not None
    assert set(snap["summary"]) >= {"spike_rate", "coverage", "coverage_vanilla",
                                    "deep_coverage", "deep_coverage_vanilla", "sgv", "tgc"}
    assert probed["diagnostics"]["probe"]["size"] == 64
    assert probed["cost"]["diagnostics_s"] > 0


@pytest.mark.parametrize("method", ["mpd_agl", "ds_atgo", "adali", "a2sg", "st_asg", "psg_pda"])
@pytest.mark.parametrize("protocol", ["controlled", "paper"])
def test_literature_methods_run_under_both_protocols(tmp_path, method, protocol):
    record, _ = _run(tmp_path, method=method, protocol=protocol,
                     params=["n_eval=4", "n_obs=2"] if method in ("a2sg", "st_asg") else [])
    assert record["status"] == "ok" and record["metrics"]["top1"] > 40  # 4 classes
    assert record["method"]["fidelity"] in ("official-code", "reconstruction")
    overlay = record["paper_overlay"]
    expected = load_method(method).paper_overlay("synthetic") if protocol == "paper" else {}
    assert overlay == expected
    for key, value in overlay.items():
        node = record["task"]["config"]
        for part in key.split("."):
            node = node[part]
        assert node == value


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mpd_agl", "ds_atgo", "adali", "a2sg", "st_asg", "psg_pda"])
@pytest.mark.parametrize("protocol", ["controlled", "paper"])
def test_literature_methods_learn_digits(tmp_path, method, protocol):
    """Acceptance: >= 90% top-1 on digits at T=4 under both protocols (slow: ~15 min)."""
    record, _ = _run(tmp_path, method=method, task="digits", T=4, protocol=protocol)
    assert record["status"] == "ok" and record["metrics"]["top1"] >= 90.0, record["metrics"]


def test_the_backend_used_is_recorded_and_a_fused_one_that_cannot_run_is_an_error(tmp_path):
    record, _ = _run(tmp_path)
    assert record["env"]["neuron_backend"] == "numba"  # auto on CPU
    out = tmp_path / "fused"
    for kwargs in ({"neuron_backend": "cupy"}, {"require_fused": True}):
        with pytest.raises(UserError, match="fused cupy backend was required"):
            _run(out, **kwargs)
    assert not out.exists() or not any(out.iterdir())


def test_channels_last_runs_on_cpu_and_trains_as_the_contiguous_layout_does(tmp_path):
    """train.channels_last takes effect on CPU (amp does not): the record says so, and training
    follows the contiguous run up to float rounding (the convolutions sum in another order)."""
    runs = {flag: _run(tmp_path / flag, task="digits", epochs=1, fd_weights=0, latency_repeats=1,
                       overrides=[f"train.channels_last={flag}", "train.amp=true"])[0]
            for flag in ("true", "false")}
    assert runs["true"]["precision"] == {"amp": False, "channels_last": True}
    assert runs["false"]["precision"] == {"amp": False, "channels_last": False}
    losses = [runs[flag]["history"][0]["train_loss"] for flag in ("true", "false")]
    assert losses[0] != losses[1]  # another layout did run
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)


def test_a_stop_signal_leaves_a_checkpoint_and_resume_matches_a_straight_run(tmp_path):
    marker = tmp_path / "interrupt-once"
    method = _method_file(tmp_path, "stoppable", f"""
        def on_epoch_start(self, model, epoch, epochs):
            import os, pathlib, signal
            marker = pathlib.Path({str(marker)!r})
            if epoch == 1 and marker.exists():
                marker.unlink()
                os.kill(os.getpid(), signal.SIGINT)  # arrives during the epoch's first step
    """)
    straight, _ = _run(tmp_path / "straight", method=str(method), seed=5)
    marker.write_text("")
    out = tmp_path / "stopped"
    stopped, _ = _run(out, method=str(method), seed=5)
    assert stopped["status"] == "interrupted" and len(stopped["history"]) == 1
    assert stopped["checkpoint"] and (out / stopped["checkpoint"]).is_file()
    resumed, _ = _run(out, method=str(method), seed=5, resume=True)
    assert resumed["status"] == "ok" and resumed["resumed_from"] == stopped["checkpoint"]
    def without_times(history):
        return [{k: v for k, v in h.items() if k != "epoch_time_s"} for h in history]

    assert without_times(resumed["history"]) == without_times(straight["history"])
    assert resumed["metrics"]["top1"] == straight["metrics"]["top1"]
    assert resumed["metrics"]["test_loss"] == straight["metrics"]["test_loss"]


def test_a_stop_in_the_first_epoch_then_resume_runs_from_the_beginning(tmp_path):
    """No epoch finished, so no checkpoint: --resume starts the run anew and completes."""
    marker = tmp_path / "interrupt-once"
    method = _method_file(tmp_path, "stopfirst", f"""
        def on_epoch_start(self, model, epoch, epochs):
            import os, pathlib, signal
            marker = pathlib.Path({str(marker)!r})
            if epoch == 0 and marker.exists():
                marker.unlink()
                os.kill(os.getpid(), signal.SIGINT)
    """)
    marker.write_text("")
    out = tmp_path / "stopped"
    stopped, _ = _run(out, method=str(method), seed=5)
    assert stopped["status"] == "interrupted" and stopped["history"] == []
    assert stopped["checkpoint"] is None
    resumed, _ = _run(out, method=str(method), seed=5, resume=True)
    assert resumed["status"] == "ok" and resumed["resumed_from"] is None
    assert len(resumed["history"]) == resumed["task"]["config"]["train"]["epochs"]
