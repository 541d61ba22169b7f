"""Temporal credit assignment: inputs that unfold in time, recurrent spiking layers every method
trains through, and SpikingJelly's own sequential network rebuilt on the engine's neuron."""
import json

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from typer.testing import CliRunner

import fixtures
from sgbench.cli import app
from sgbench.data import encode, step_shape
from sgbench.errors import UserError
from sgbench.neuron.capture import GradCapture
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
    assert len(layers[0]["grad_rms_per_step"]) == 28 and max(layers[0]["grad_rms_per_step"]) > 0


def test_a_T_the_encoding_cannot_feed_ends_in_one_line(tmp_path):
    fixtures.mnist(tmp_path / "data", "FashionMNIST")
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "sfmnist", "--T", "4", "--data-dir",
                                 str(tmp_path / "data"), "--out", str(tmp_path / "runs")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "feeds 28 steps" in result.output


def test_event_bins_count_spikes_per_bin_and_channel_and_drop_late_ones():
    from sgbench.data.audio import EventBins

    events = {"t": np.array([0.0, 0.0099, 0.010, 0.0251, 0.5], dtype=np.float16),
              "x": np.array([0, 699, 1, 699, 5], dtype=np.uint16)}
    frames = EventBins(T=3, bin_ms=10.0, channels=700)(events)
    assert frames.shape == (3, 700) and frames.sum() == 4  # 0.5 s is past 3 x 10 ms
    assert frames[0, 0] == frames[0, 699] == frames[1, 1] == frames[2, 699] == 1
    pooled = EventBins(T=3, bin_ms=10.0, channels=7)(events)  # unit u -> u * 7 // 700
    assert pooled.tolist()[0] == [1, 0, 0, 0, 0, 0, 1] and pooled[1, 0] == 1


def test_shd_reads_spikingjellys_hdf5_layout_through_its_loader(tmp_path):
    import h5py

    from sgbench.data import build_data
    from sgbench.data.location import DataContext

    fixtures.spiking_audio(tmp_path, "shd", ("train", "test"), classes=20, per_split=5)
    bundle = build_data({"dataset": "shd", "encoding": "frames", "bin_ms": 20.0},
                        DataContext(tmp_path, False, 50))
    assert (len(bundle.train), len(bundle.test), bundle.num_classes) == (5, 5, 20)
    with h5py.File(tmp_path / "shd/events_h5/shd_test.h5") as f:
        times, units, label = f["spikes/times"][3], f["spikes/units"][3], f["labels"][3]
    frames, y = bundle.test[3]
    assert y == label and frames.shape == (50, 700)
    kept = np.floor(times.astype(np.float64) * 1000 / 20) < 50
    assert frames.sum() == kept.sum() and frames[:, units[kept][0]].sum() >= 1


def test_the_max_readout_gives_the_readout_potentials_maximum_over_time():
    model = build_model({"arch": "rsnn", "hidden": [6], "readout": "max", "readout_decay": 0.9},
                        SECTION, (4,), 3)
    x = torch.rand(7, 2, 4) * 3
    potentials = model.body[:-1](x)  # the leaky readout's U[t], every step
    functional.reset_net(model)
    torch.testing.assert_close(model(x), potentials.max(0).values)


def test_the_gradients_rms_per_step_is_the_root_mean_square_of_each_steps_dl_dh():
    delta = torch.randn(5, 3, 4, dtype=torch.float64) * torch.tensor([1e-8, 1e-4, 1, 2, 3],
                                                                      dtype=torch.float64
                                                                      ).reshape(5, 1, 1)
    rms = GradCapture.of(delta).rms_per_step()
    expected = delta.square().mean(dim=(1, 2)).sqrt().tolist()
    assert rms == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("method", sorted(builtin_names()))
def test_the_fused_recurrent_sequence_is_the_step_loop(method):
    """Where a layer's rule fixes its thresholds before the sequence, the recurrent layer runs as
    one autograd node (neuron/recurrent.py): the same spikes, potentials and every parameter
    gradient as the neuron stepped through autograd, in float64."""
    def trained(backend):
        torch.manual_seed(3)
        model = build_model({"arch": "rsnn", "hidden": [16, 12], "readout": "membrane"},
                            {**SECTION, "reset": "soft"}, (5,), 3).double()
        load_method(method)().attach(model, 9)
        for node in neurons(model):
            node.backend = backend
        model.train()
        x = torch.rand(9, 4, 5, dtype=torch.float64) * 3
        out = model(x)
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
         ).sum().backward()
        return model, out

    fused, out = trained("auto")
    loop, expected = trained("torch")
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    for (name, p), (_, q) in zip(fused.named_parameters(), loop.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    layers = [fused.body[0].neuron, fused.body[1].neuron]
    rule = layers[0].rule
    if rule.mode == "sequence" and not rule.scaled_output and not layers[0].keep_h:
        assert all(n.used_backend == "torch-recurrent" for n in layers)  # the fused path ran


@pytest.mark.parametrize("backend", ["auto", "torch"])  # the fused sequence, the step loop
def test_the_rule_hears_the_end_of_a_recurrent_sequence(backend):
    """LocalZO draws anew for every training sequence, also in a recurrent layer."""
    model = build_model({"arch": "rsnn", "hidden": [8]}, SECTION, (4,), 2)
    load_method("localzo")().attach(model, 6)
    model.train()
    node = neurons(model)[0]
    node.backend = backend
    before = int(node.rule.draws)
    model(torch.rand(6, 3, 4))
    assert int(node.rule.draws) == before + 1


def test_the_spikingjelly_candidate_of_bench_epoch_is_the_same_recurrent_network():
    """`bench epoch` times SpikingJelly's LinearRecurrentContainer in place of each recurrent
    layer: the same function, so the comparison is of speed alone."""
    from sgbench.bench.epoch import Surrogate, spikingjelly_factory, spikingjelly_recurrence
    from sgbench.neuron.shapes import get_shape

    factory = spikingjelly_factory({**SECTION, "learnable_decay": False},
                                   Surrogate(get_shape("atan"), (2.0,)))
    model = build_model({"arch": "rsnn", "hidden": [12]}, SECTION, (5,), 3,
                        neuron_factory=factory).double()
    x = torch.rand(8, 4, 5, dtype=torch.float64) * 3
    expected = model(x)
    functional.reset_net(model)
    spikingjelly_recurrence(model)
    model.double()
    assert isinstance(model.body[0][1], layer.LinearRecurrentContainer)
    torch.testing.assert_close(model(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["a2sg", "st_asg"])
def test_a_search_remakes_a_recurrent_layers_gradients_for_other_widths(method):
    """A2SG's search reruns a layer's BPTT at candidate widths (GradCapture.deltas): in a
    recurrent layer through its feedback, from the probe pass's spikes and upstream gradients.
    At the widths in use it gives the probe's own dL/dH; it runs in training (adapt)."""
    from sgbench.measure.probe import Probe

    torch.manual_seed(0)
    model = build_model({"arch": "rsnn", "hidden": [8], "readout": "membrane"}, SECTION,
                        (5,), 3)
    rule = load_method(method)()
    rule.attach(model, 7)
    x, y = torch.rand(7, 6, 5) * 3, torch.randint(0, 3, (6,))
    probe = Probe(x, y, torch.nn.CrossEntropyLoss(), rule.aux_loss, "test")
    node = neurons(model)[0]
    capture = probe.run(model, keep=[node], observe=False).captures[node]
    _, p = node.rule.thresholds(node, 7)
    again = GradCapture.of(capture.deltas(p))
    assert again.rms_per_step() == pytest.approx(capture.rms_per_step(), rel=1e-5)
    wider = capture.deltas(p * 1.5)
    assert wider.shape == (7, 6, 8) and not torch.allclose(wider, capture.deltas(p))
    capture.release()
    rule.adapt(model, 0, probe)  # the search itself, on every layer
