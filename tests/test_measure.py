"""Operations, energy, latency, throughput and evaluation at other T."""
import json
import time

import pytest
import torch
from spikingjelly.activation_based import layer
from torch import nn
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.measure.latency import measure_latency
from sgbench.measure.ops import PRESETS, EnergyModel, count_ops
from sgbench.method import Method
from sgbench.models import SpikingClassifier
from sgbench.neuron.node import SpikingNeuron
from sgbench.neuron.rules import FixedRule
from sgbench.train.loop import EpochResult, train_epoch

runner = CliRunner()


def _tiny_net():
    """conv 1x1 (1 -> 2 channels, weights 0.5) - IF neuron (threshold 1) - flatten - linear."""
    conv = layer.Conv2d(1, 2, 1, bias=False)
    nn.init.constant_(conv.weight, 0.5)  # not 0/1: SpikingJelly would take it for spikes
    neuron = SpikingNeuron(charge="if", rule=FixedRule("rect", [0.5, 0.5, 0.5, 0.5]))
    return SpikingClassifier(nn.Sequential(conv, neuron, layer.Flatten(),
                                           layer.Linear(32, 3, bias=False)))


def _known_input(T=2):
    x = torch.zeros(T, 1, 1, 4, 4)
    x[:, 0, 0, 0, 0] = x[:, 0, 0, 1, 2] = x[:, 0, 0, 3, 3] = 4.0  # 3 pixels, real-valued
    return x


def test_synops_macs_and_energy_equal_a_hand_count():
    ops = count_ops(_tiny_net(), _known_input())
    # conv: real input -> MACs = C_in * k^2 * C_out * H * W = 1 * 1 * 2 * 16 per step, 2 steps
    # IF neurons: H = 0.5 * 4 = 2 >= 1 at 3 pixels x 2 channels, every step (hard reset to 0)
    # linear: 6 input spikes x 3 outputs per step, 2 steps
    assert ops["macs"] == 64 and ops["synops"] == 36
    assert [(r["layer"], r["macs"], r["synops"]) for r in ops["layers"]] == [
        ("body.0", 64, 0), ("body.3", 0, 36)]
    assert ops["energy_uj"] == pytest.approx((4.6 * 64 + 0.9 * 36) * 1e-6)
    linear = ops["layers"][1]
    assert linear["input_rate"] == pytest.approx(6 / 32)
    assert linear["paper_sops"] == pytest.approx(6 / 32 * 2 * 32 * 3)  # rate x T x dense ops
    assert ops["paper"]["macs"] == 64


def test_two_presets_differ_exactly_by_the_ratio_of_their_constants():
    a = count_ops(_tiny_net(), _known_input(), EnergyModel.parse("45nm-fp32"))
    b = count_ops(_tiny_net(), _known_input(), EnergyModel.parse("45nm-fp16"))
    (mac_a, ac_a), (mac_b, ac_b) = PRESETS["45nm-fp32"], PRESETS["45nm-fp16"]
    assert a["energy_mac_uj"] / b["energy_mac_uj"] == pytest.approx(mac_a / mac_b, rel=1e-12)
    assert a["energy_ac_uj"] / b["energy_ac_uj"] == pytest.approx(ac_a / ac_b, rel=1e-12)
    custom = EnergyModel.parse("1,2")
    assert custom.energy_uj(10, 100)["energy_uj"] == pytest.approx(210e-6)
    with pytest.raises(Exception, match="energy model"):
        EnergyModel.parse("45nm-fp64")


class _Sleepy(nn.Module):
    def forward(self, x):
        time.sleep(0.002)
        return x


def test_latency_harness_gives_consistent_order_statistics():
    result = measure_latency(_Sleepy(), torch.zeros(2, 3, 4), repeats=30, warmup=2)
    assert result["repeats"] == 30 and result["batch"] == 3 and result["T"] == 2
    assert 2.0 <= result["min_ms"] <= result["p50_ms"] <= result["p95_ms"] <= result["max_ms"]


def test_throughput_excludes_data_loading():
    class SlowLoader:
        def __iter__(self):
            for _ in range(4):
                time.sleep(0.05)  # loading a batch
                yield torch.randn(8, 1, 4, 4), torch.randint(0, 3, (8,))

    model = SpikingClassifier(nn.Sequential(layer.Conv2d(1, 2, 1), SpikingNeuron(),
                                            layer.Flatten(), layer.Linear(32, 3)))
    method = Method.__new__(Method)
    start = time.perf_counter()
    result: EpochResult = train_epoch(model, method, SlowLoader(),
                                      torch.optim.SGD(model.parameters(), lr=0.1),
                                      nn.CrossEntropyLoss(), 2, "direct", torch.device("cpu"))
    wall = time.perf_counter() - start
    assert result.samples == 32 and wall >= 0.2
    assert result.compute_s < wall - 0.19  # the 0.2 s of loading is not in the compute time


def test_profile_prints_the_measures_in_seconds():
    start = time.perf_counter()
    result = runner.invoke(app, ["profile", "--task", "digits", "--method", "atan", "--T", "4",
                                 "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("synops", "macs", "energy_uj", "latency_b1_p50_ms", "latency_b1_p95_ms",
                "latency_bn_p50_ms", "latency_bn_p95_ms", "parameters"):
        assert report[key] is not None, key
    assert report["parameters"] == 9978 and report["macs"] == 36864  # conv1: 16*9*64 x T=4
    assert time.perf_counter() - start < 60


def test_profile_loads_a_checkpoint_and_rejects_a_wrong_one(tmp_path):
    from sgbench.config import resolve_task
    from sgbench.data import build_data
    from sgbench.measure.profile import profile
    from sgbench.models import build_model

    cfg = resolve_task("synthetic")
    data = build_data(cfg["data"])
    model = build_model(cfg["model"], cfg["neuron"], data.input_shape, data.num_classes)
    silent = tmp_path / "silent.pt"  # every weight zero: no neuron ever fires
    torch.save({k: torch.zeros_like(v) for k, v in model.state_dict().items()}, silent)
    random_init = profile("synthetic", "atan", None, torch.device("cpu"), repeats=2)
    loaded = profile("synthetic", "atan", None, torch.device("cpu"), checkpoint=silent,
                     repeats=2)
    assert loaded["weights"] == str(silent) and random_init["weights"].startswith("random")
    # the head sees average-pooled spikes: fractions after random init, all zero when silent
    assert random_init["layers"][1]["input_rate"] is None
    assert loaded["layers"][1]["input_rate"] == 0
    bad = tmp_path / "bad.pt"
    torch.save({"nope": torch.zeros(1)}, bad)
    result = runner.invoke(app, ["profile", "-t", "synthetic", "-m", "atan", "--checkpoint",
                                 str(bad)])
    assert result.exit_code == 1 and "does not fit" in result.output


def test_run_records_the_measures_and_each_eval_T(tmp_path):
    result = runner.invoke(app, ["run", "-m", "ds_atgo", "-t", "synthetic", "--eval-T", "1,4",
                                 "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert {"synops", "macs", "energy_uj", "energy_paper_uj"} <= set(record["metrics"])
    assert {"latency_b1_p50_ms", "latency_bn_p95_ms", "peak_memory_mb",
            "train_samples_per_s", "epoch_time_s"} <= set(record["cost"])
    rows = record["eval_T"]
    assert [r["T"] for r in rows] == [1, 2, 4]
    assert rows[1]["policy"] == "trained" and "last" in rows[2]["policy"]
    assert all(r["top1"] is not None and r["latency_b1_p50_ms"] > 0 for r in rows)
    assert rows[0]["macs"] * 4 == rows[2]["macs"]  # real-valued input: MACs every step
    columns = runner.invoke(app, ["compare", "--runs", str(tmp_path), "--columns",
                                  "top1,energy_uj,peak_memory_mb"])
    assert "energy (uJ)" in columns.stdout and "peak memory (MB)" in columns.stdout
    assert "SynOps" not in columns.stdout


@pytest.mark.slow
def test_eval_T_on_digits_records_accuracy_synops_and_latency(tmp_path):
    result = runner.invoke(app, ["run", "--method", "atan", "--task", "digits", "--T", "4",
                                 "--eval-T", "1,2,8", "--out", str(tmp_path), "--json"])
    rows = json.loads(result.stdout)["eval_T"]
    assert [r["T"] for r in rows] == [1, 2, 4, 8]
    assert all(r["top1"] > 50 and r["synops"] > 0 and r["latency_bn_p50_ms"] > 0 for r in rows)
