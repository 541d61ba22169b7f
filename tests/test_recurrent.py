"""Temporal credit assignment: inputs that unfold in time, recurrent spiking layers every method
trains through, and SpikingJelly's own sequential network rebuilt on the engine's neuron."""
import json

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from typer.testing import CliRunner

import fixtures
from sgbench.cli import app
from sgbench.data import encode, step_shape
from sgbench.errors import UserError
from sgbench.models import build_model
from sgbench.neuron.node import neurons
from sgbench.registry import builtin_names, load_method

runner = CliRunner()
SECTION = dict(charge="tau", tau=2.0, decay_input=True, v_threshold=1.0, reset="hard",
               v_reset=0.0, detach_reset=False)


def test_rows_feed_one_image_row_per_step():
    x = torch.rand(3, 1, 28, 28)
    seq = encode(x, 28, "rows")
    assert seq.shape == (28, 3, 28) and torch.equal(seq[5, 1], x[1, 0, 5])
    assert step_shape((1, 28, 28), "rows") == (28,)
    with pytest.raises(UserError, match="feeds 28 steps"):
        encode(x, 4, "rows")


def test_pixels_follow_one_fixed_permutation():
    x = torch.rand(2, 1, 4, 4)
    seq = encode(x, 16, "pixels")
    assert seq.shape == (16, 2, 1) and torch.equal(seq, encode(x, 16, "pixels"))
    assert sorted(seq[:, 0, 0].tolist()) == sorted(x[0].flatten().tolist())
    assert not torch.equal(seq[:, 0, 0], x[0].flatten())  # permuted


def test_latency_gives_brighter_pixels_earlier_spikes_and_dark_ones_none():
    x = torch.tensor([[1.0, 0.5, 0.25, 0.1]]).reshape(1, 1, 2, 2)
    seq = encode(x, 100, "latency")
    assert seq.shape == (100, 1, 4) and seq.sum(0).tolist() == [[1.0, 1.0, 1.0, 0.0]]
    first = seq[:, 0].argmax(0)
    assert first[0] < first[1] < first[2]  # tau ln(x / (x - 0.2)): 4, 10, 32 steps
    assert first.tolist()[:3] == [4, 10, 32]


def test_a_sequence_encoding_needs_images():
    with pytest.raises(UserError, match="needs image data"):
        step_shape((64,), "rows")


def _feedback_reference():
    """SpikingJelly's rsnn_sequential_fmnist FeedBackNet, as the example builds it."""
    net = torch.nn.Sequential(
        layer.Linear(28, 32),
        layer.LinearRecurrentContainer(
            neuron.IFNode(surrogate_function=surrogate.ATan(), detach_reset=True),
            in_features=32, out_features=32, bias=True),
        layer.Linear(32, 10), neuron.IFNode(surrogate_function=surrogate.ATan()))
    functional.set_step_mode(net, "m")
    return net.double()


def test_spikingjellys_feedback_network_on_the_engine_is_spikingjellys():
    ours = build_model({"arch": "sj_feedback"}, SECTION, (28,), 10).double()
    load_method("atan")().attach(ours, 28)  # SpikingJelly's ATan, alpha 2
    ref = _feedback_reference()
    ref.load_state_dict({k.removeprefix("body."): v for k, v in ours.state_dict().items()
                         if ".rule." not in k})
    x = torch.rand(28, 4, 28, dtype=torch.float64) * 2
    out, expected = ours(x), ref(x).mean(0)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.abs().sum() > 0
    weights = torch.randn(4, 10, dtype=torch.float64)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    for (name, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)


def test_recurrent_weights_feed_the_spikes_back():
    model = build_model({"arch": "rsnn", "hidden": [16]}, SECTION, (8,), 3)
    plain = build_model({"arch": "rsnn", "hidden": [16], "recurrent": False}, SECTION, (8,), 3)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".rec." not in k})
    x = torch.rand(12, 5, 8) * 6
    hidden, plain_hidden = model.body[0](x), plain.body[0](x)  # the recurrent layer's spikes
    assert hidden.sum() > 0 and not torch.equal(hidden, plain_hidden)
    functional.reset_net(model), functional.reset_net(plain)
    torch.nn.init.zeros_(model.body[0].rec.weight)
    torch.testing.assert_close(model.body[0](x), plain.body[0](x))


@pytest.mark.parametrize("method", sorted(builtin_names()))
@pytest.mark.parametrize("readout", ["membrane", "last"])
def test_every_method_trains_through_a_recurrent_layer(method, readout):
    torch.manual_seed(1)
    model = build_model({"arch": "rsnn", "hidden": [24], "readout": readout}, SECTION, (6,), 3)
    rule = load_method(method)()
    rule.attach(model, 10)
    x = torch.rand(10, 8, 6) * 4
    loss = model(x).pow(2).sum()
    aux = rule.aux_loss(model)
    (loss if aux is None else loss + aux).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    recurrent = model.body[0].rec.weight.grad
    assert recurrent.abs().sum() > 0  # the gradient crossed time through the feedback
    functional.reset_net(model)


def test_a_loss_on_H_sees_every_single_step():
    model = build_model({"arch": "rsnn", "hidden": [12]}, SECTION, (4,), 2)
    load_method("psg_pda")().attach(model, 9)
    model.train()
    model(torch.rand(9, 3, 4))
    assert neurons(model)[0].h_seq.shape == (9, 3, 12)


def test_sfmnist_trains_on_a_fashion_mnist_fixture(tmp_path):
    fixtures.mnist(tmp_path / "data", "FashionMNIST")
    result = runner.invoke(app, [
        "run", "-m", "ds_atgo", "-t", "sfmnist", "--data-dir", str(tmp_path / "data"),
        "--out", str(tmp_path / "runs"), "--json", "-o", "train.epochs=1",
        "-o", "train.batch_size=4", "-o", "model.hidden=[8]", "--latency-repeats", "2",
        "--fd-weights", "4"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and record["T"] == 28
    layers = record["diagnostics"]["snapshots"][-1]["layers"]
    assert len(layers[0]["tgc_per_step"]) > 0  # the gradient per timestep


def test_a_T_the_encoding_cannot_feed_ends_in_one_line(tmp_path):
    fixtures.mnist(tmp_path / "data", "FashionMNIST")
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "sfmnist", "--T", "4", "--data-dir",
                                 str(tmp_path / "data"), "--out", str(tmp_path / "runs")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "feeds 28 steps" in result.output
