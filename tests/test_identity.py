"""A method's identity follows every change of its code: the source hash covers a plugin
package's every module, a changed method is a new run that never resumes an old checkpoint, and
a checkpoint resumes only the run it belongs to, with contents that make sense."""
import json
import os
import subprocess
import sys

import pytest
import torch

from sgbench import checkpoint
from sgbench.errors import UserError
from fixtures import plugin_package  # tests/ is on the path (baycomp ships a package "tests")


def _sgbench(*args, root, cwd):
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    env.pop("SGBENCH_NO_ENTRY_POINTS", None)
    return subprocess.run([sys.executable, "-m", "sgbench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_an_edit_in_a_sibling_module_is_a_new_run_and_a_second_labelled_row(tmp_path):
    root = tmp_path / "site"
    plugin_package(root)
    run = ("run", "--method", "gauss", "--task", "digits", "--T", "2", "--epochs", "1",
           "--out", tmp_path / "runs", "--latency-repeats", "1", "--fd-weights", "0")
    first = _sgbench(*run, root=root, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    plugin_package(root, scale=2.0)  # the formula changes in shapes.py, not in the method's file
    second = _sgbench(*run, "--resume", root=root, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already finished" not in second.stderr + second.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert len(records) == 2 and len({r["method"]["source_sha256"] for r in records}) == 2
    assert len({r["run_key"] for r in records}) == 2
    shown = _sgbench("compare", "--runs", tmp_path / "runs", "--format", "json", root=root,
                     cwd=tmp_path)
    labels = sorted(row["label"] for row in json.loads(shown.stdout))
    hashes = sorted(r["method"]["source_sha256"][:7] for r in records)
    assert labels == [f"gauss @{h}" for h in hashes]


def _identity(**changes):
    base = {"config_sha256": "c", "method": "atan", "params": "{}", "source_sha256": "s",
            "seed": 0, "protocol": "controlled"}
    return {**base, **changes}


def _state(**changes):
    state = {"epochs_done": 1, "model": {"w": torch.ones(2)}, "optimizer": {}, "schedule": None,
             "rng": {}, "history": [{"epoch": 1}], "snapshots": [], "identity": _identity(),
             "compute_s": 1.0, "samples": 10, "timers": {}}
    return {**state, **changes}


@pytest.mark.parametrize("changes,needle", [
    ({"identity": _identity(seed=1)}, "its seed differs"),  # another seed's, renamed
    ({"identity": _identity(method="rect")}, "its method differs"),
    ({"identity": _identity(source_sha256="old")}, "its source_sha256 differs"),
    ({"identity": _identity(params='{"alpha": 4}')}, "its params differs"),
    ({"epochs_done": -3}, "epochs_done is -3"),
    ({"epochs_done": 1.5}, "epochs_done is 1.5"),
    ({"history": []}, "one entry per finished epoch"),
    ({"model": {"w": torch.tensor([1.0, float("nan")])}}, "non-finite weights in w"),
    ({"compute_s": "fast"}, "compute_s is 'fast'"),
])
def test_resume_refuses_another_runs_or_a_broken_checkpoint(tmp_path, changes, needle):
    path = tmp_path / "run.ckpt.pt"
    torch.save(_state(**changes), path)
    with pytest.raises(UserError, match=needle):
        checkpoint.check(path, _identity(), epochs=3)


def test_resume_refuses_a_checkpoint_missing_a_field(tmp_path):
    path = tmp_path / "run.ckpt.pt"
    state = _state()
    del state["identity"]  # e.g. written before checkpoints stored their run
    torch.save(state, path)
    with pytest.raises(UserError, match="no identity"):
        checkpoint.check(path, _identity(), epochs=3)
    torch.save(_state(), path)
    assert checkpoint.check(path, _identity(), epochs=3)["epochs_done"] == 1


def test_the_checkpoint_stem_changes_with_the_method_source():
    cfg = {"name": "digits", "T": 4}
    one = checkpoint.checkpoint_path(tmp := __import__("pathlib").Path("."), cfg, _identity())
    two = checkpoint.checkpoint_path(tmp, cfg, _identity(source_sha256="t"))
    assert one != two and one.name.startswith("digits_atan_T4_s0_controlled_")


def test_an_entry_point_named_like_a_built_in_leaves_the_built_in_usable(tmp_path):
    root = tmp_path / "site"
    plugin_package(root, entry_name="atan")
    ran = _sgbench("run", "--method", "atan", "--task", "digits", "--T", "2", "--epochs", "1",
                   "--out", tmp_path / "runs", "--latency-repeats", "1", "--fd-weights", "0",
                   "--json", root=root, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["method"]["origin"]["kind"] == "built-in"
    listed = _sgbench("list", "methods", "--json", root=root, cwd=tmp_path)
    rows = [r for r in json.loads(listed.stdout) if r["name"] == "atan"]
    assert [r["origin"].split(" ")[0] for r in rows] == ["built-in", "entry"]
    assert "claims the name of sgbench's built-in 'atan'" in rows[1]["error"]
    assert rows[0]["error"] is None


def test_an_installed_plugins_own_file_runs_by_path_and_a_changed_copy_says_what_to_do(tmp_path):
    root = tmp_path / "site"
    package = plugin_package(root)
    copy = tmp_path / "method.py"
    copy.write_text((package / "method.py").read_text())
    checked = _sgbench("check-method", copy, "--json", root=root, cwd=tmp_path)
    assert json.loads(checked.stdout)["origin"]["kind"] == "entry point"
    copy.write_text(copy.read_text().replace("0.5, gt=0", "0.7, gt=0"))
    refused = _sgbench("check-method", copy, root=root, cwd=tmp_path)
    assert refused.returncode != 0 and "SGBENCH_NO_ENTRY_POINTS=1" in refused.stderr
    assert "Traceback" not in refused.stderr
