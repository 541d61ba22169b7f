"""`sgbench sweep --dry-run --estimate`: the pending jobs' time from finished runs of the same
configuration, else from training steps timed now."""
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.sweep.estimate import FORWARD_SHARE, estimate, job_seconds
from sgbench.sweep.spec import Job
from sgbench.sweep.state import JobState


def _state(method, seed, state, wall=None):
    record = {"cost": {"wall_s": wall}} if wall is not None else None
    return JobState(Job(method, "digits", None, seed, "controlled"), state, record)


def test_finished_runs_give_their_median_and_other_configurations_are_timed_once():
    timed = []

    def time_steps(job):
        timed.append(job.method)
        return {"step_s": 0.5, "train_batches": 10, "test_batches": 3, "epochs": 2,
                "adapt_s": 0.25}

    states = [_state("atan", 0, "done", 100.0), _state("atan", 1, "done", 140.0),
              _state("atan", 2, "done", 120.0), _state("atan", 3, "pending"),
              _state("rect", 0, "running"), _state("trsg", 0, "pending"),
              _state("trsg", 1, "failed")]
    found = estimate(states, 2, time_steps)
    assert timed == ["trsg"]  # atan from its runs; rect is running, not pending
    per_trsg = (0.5 * (10 + FORWARD_SHARE * 3) + 0.25) * 2  # steps and adapt, every epoch
    assert per_trsg == job_seconds({"step_s": 0.5, "train_batches": 10, "test_batches": 3,
                                    "epochs": 2, "adapt_s": 0.25})
    by_method = {key[0]: e for key, e in found["configurations"].items()}
    assert (by_method["atan"].seconds, by_method["atan"].jobs) == (120.0, 1)
    assert (by_method["trsg"].source, by_method["trsg"].jobs) == ("steps", 2)
    assert found["job_seconds"] == 120.0 + 2 * per_trsg
    assert found["wall_seconds"] == max(found["job_seconds"] / 2, 120.0)


def test_estimate_times_a_real_configuration_and_needs_dry_run(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text("name: g\nmethods: [atan]\ntasks: [digits]\nseeds: [0]\ndevice: cpu\n"
                    f"out: {tmp_path / 'out'}\n")
    result = CliRunner().invoke(app, ["sweep", str(spec), "--dry-run", "--estimate", "--json"])
    assert result.exit_code == 0, result.output
    import json

    found = json.loads(result.stdout)["estimate"]
    assert found["configurations"][0]["from"] == "steps" and found["wall_seconds"] > 0
    refused = CliRunner().invoke(app, ["sweep", str(spec), "--estimate"])
    assert refused.exit_code == 2 and "--dry-run" in refused.output


def test_a_timed_configuration_counts_the_methods_between_epoch_work(monkeypatch):
    """``step_seconds`` times one ``adapt`` on the probe batch a run would use."""
    import time

    from sgbench.bench.epoch import step_seconds
    from sgbench.registry import load_method

    seen = []

    def adapt(self, model, epoch, probe):
        seen.append((epoch, int(probe.y.shape[0])))
        time.sleep(0.05)

    monkeypatch.setattr(load_method("atan"), "adapt", adapt)
    timing = step_seconds("atan", "digits", epochs=1, steps=1, warmup=0)
    assert seen == [(0, 64)] and timing["adapt_s"] >= 0.05
