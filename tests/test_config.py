import pytest

from sgbench.config import resolve_task, task_names
from sgbench.errors import UsageError, UserError


def test_tasks_are_listed_without_bases():
    assert {"digits", "synthetic"} <= set(task_names())
    assert not any(name.startswith("_") for name in task_names())


def test_include_merges_the_shared_base():
    cfg = resolve_task("digits")
    assert cfg["neuron"]["charge"] == "tau" and cfg["train"]["optimizer"] == "adam"
    assert cfg["version"] == 1 and cfg["T"] == 4


def test_overrides_are_typed_and_checked():
    cfg = resolve_task("digits", overrides=["train.epochs=3", "train.lr=0.01",
                                            "model.channels=[8, 8]"], T=2)
    assert cfg["train"]["epochs"] == 3 and cfg["train"]["lr"] == 0.01
    assert cfg["model"]["channels"] == [8, 8] and cfg["T"] == 2
    with pytest.raises(UsageError, match="did you mean 'epochs'"):
        resolve_task("digits", overrides=["train.epoch=3"])
    with pytest.raises(UsageError, match="integer"):
        resolve_task("digits", overrides=["train.epochs=2.5"])
    with pytest.raises(UsageError, match="key=value"):
        resolve_task("digits", overrides=["train.epochs"])


def test_unknown_keys_and_malformed_yaml_in_task_files(tmp_path):
    (tmp_path / "base.yaml").write_text("neuron:\n  tau: 3.0\n")
    good = tmp_path / "good.yaml"
    good.write_text("include: base.yaml\nname: g\nversion: 2\ndata: {dataset: digits}\n"
                    "model: {arch: convnet}\n")
    assert resolve_task(str(good))["neuron"]["tau"] == 3.0
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: t\nversion: 1\ndata: {dataset: digits}\nmodel: {arch: convnet}\n"
                    "trian: {epochs: 1}\n")
    with pytest.raises(UserError, match="unknown key 'trian'.*'train'"):
        resolve_task(str(typo))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="malformed task YAML.*line"):
        resolve_task(str(broken))


def test_paper_protocol_applies_the_method_overlay():
    overlay = {"neuron.charge": "mul", "train.epochs": 7}
    def paper_overlay(dataset):
        assert dataset == "digits"
        return overlay

    paper = resolve_task("digits", protocol="paper", paper_overlay=paper_overlay)
    assert paper["neuron"]["charge"] == "mul" and paper["train"]["epochs"] == 7
    assert resolve_task("digits", paper_overlay=paper_overlay)["neuron"]["charge"] == "tau"
    with pytest.raises(UsageError):
        resolve_task("digits", protocol="papers")
