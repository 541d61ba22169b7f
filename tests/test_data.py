"""Real data found where systems put it, read in place; tensor-held datasets and their batches;
the layers that compute a static input once and the faster 2x2 max-pool (exact, not close)."""
import copy
import gzip
import json
import struct

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import layer
from typer.testing import CliRunner

import fixtures
from sgbench.cli import app
from sgbench.data import build_data, idx
from sgbench.data.location import DataContext
from sgbench.data.tensors import Augment, TensorLoader, TensorSplit
from sgbench.errors import UserError
from sgbench.models import static
from sgbench.models.norm import Norm
from sgbench.models.pool import MaxPool2d

runner = CliRunner()


def _debian_fashion_mnist(root, n=6):
    """The files as Debian's dataset-fashion-mnist installs them: gzipped, in fashion-mnist/."""
    folder = root / "fashion-mnist"
    fixtures.mnist(root / "plain", "FashionMNIST", n, n)
    folder.mkdir(parents=True)
    for name in idx.FILES:
        data = (root / "plain" / "FashionMNIST" / "raw" / name).read_bytes()
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    return folder


def test_the_system_dataset_folder_is_read_in_place_and_the_record_names_the_files(
        tmp_path, monkeypatch):
    system = tmp_path / "usr-share-datasets"
    folder = _debian_fashion_mnist(system)
    monkeypatch.setenv("SGBENCH_SYSTEM_DATA", str(system))
    result = runner.invoke(app, [
        "run", "-m", "atan", "-t", "fashion_mnist", "--data-dir", str(tmp_path / "empty"),
        "--out", str(tmp_path / "runs"), "--json", "-o", "train.epochs=1",
        "-o", "train.batch_size=4", "--latency-repeats", "1"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["data"]["files"]
    assert [f["path"] for f in files] == [str(folder / f"{n}.gz") for n in idx.FILES]
    assert all(len(f["sha256"]) == 64 for f in files)
    assert not (tmp_path / "empty").exists()  # nothing copied or unpacked


def test_missing_fashion_mnist_names_the_debian_package_and_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SGBENCH_SYSTEM_DATA", str(tmp_path / "system"))
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "fashion_mnist", "--data-dir",
                                 str(tmp_path / "data"), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "apt-get install dataset-fashion-mnist" in result.output
    assert "--download" in result.output and str(tmp_path / "system") in result.output


@pytest.mark.parametrize("damage,message", [
    (lambda b: b"\x00\x00\x09\x03" + b[4:], "not an unsigned-byte idx file"),
    (lambda b: b[:-5], "bytes where shape"),
    (lambda b: b[:3], "not an idx file"),
])
def test_a_damaged_idx_file_is_one_clear_error(tmp_path, damage, message):
    fixtures.mnist(tmp_path, "FashionMNIST")
    path = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UserError, match=message):
        build_data({"dataset": "fashion_mnist"}, DataContext(tmp_path, system_roots=()))


def test_idx_arrays_are_the_stored_bytes():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = struct.pack(">IIII", 0x0803, 2, 3, 4) + images.tobytes()
    assert np.array_equal(idx.parse_idx(data, "x"), images)
    assert np.array_equal(idx.parse_idx(struct.pack(">II", 0x0801, 3) + b"\x01\x02\x03", "y"),
                          [1, 2, 3])


def test_mnist_batches_are_torchvisions_totensor_and_normalize(tmp_path):
    from torchvision import datasets, transforms

    fixtures.mnist(tmp_path, "FashionMNIST", 5, 3)
    data = build_data({"dataset": "fashion_mnist"}, DataContext(tmp_path, system_roots=()))
    reference = datasets.FashionMNIST(tmp_path, train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))]))
    x, y = data.train.batch(torch.arange(5))
    assert torch.allclose(x, torch.stack([reference[i][0] for i in range(5)]), atol=1e-6)
    assert y.tolist() == [reference[i][1] for i in range(5)]


def _split(n=10):
    return TensorSplit(torch.arange(n * 4, dtype=torch.uint8).reshape(n, 1, 2, 2),
                       torch.arange(n), scale=1 / 255)


def test_loader_shuffles_by_its_generator_and_shards_cover_the_set_once():
    split = _split(10)
    first = [y for _, y in TensorLoader(split, 3, True, torch.Generator().manual_seed(1))]
    again = [y for _, y in TensorLoader(split, 3, True, torch.Generator().manual_seed(1))]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    shards = [torch.cat([y for _, y in TensorLoader(split, 2, True,
                                                    torch.Generator().manual_seed(1), rank=r,
                                                    world_size=3)]).tolist() for r in range(3)]
    assert sorted(sum(shards, [])) == sorted(set(sum(shards, []))) and len(sum(shards, [])) == 9
    dropped = list(TensorLoader(split, 4, drop_last=True))
    assert [len(y) for _, y in dropped] == [4, 4]
    assert len(TensorLoader(split, 4, drop_last=True)) == 2


def test_crop_and_flip_are_torchvisions_per_sample():
    x = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8)
    out = Augment(crop_padding=2, flip=True)(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):  # every sample is some crop of its padded copy, maybe mirrored
        crops = [padded[i, :, a:a + 8, b:b + 8] for a in range(5) for b in range(5)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_static_input_is_computed_once_with_the_same_outputs_gradients_and_statistics(scale):
    torch.manual_seed(0)
    conv = static.Conv2d(2, 4, 3, padding=1, bias=False, step_mode="m")
    bn = Norm(scale, 1.5).d2(4)
    bn.step_mode = "m"
    stock_conv, stock_bn = copy.deepcopy(conv), copy.deepcopy(bn)
    x = torch.randn(3, 2, 6, 6)
    x_seq = x.unsqueeze(0).expand(4, *x.shape)  # what direct encoding gives the network
    y = bn(conv(x_seq))
    weight = torch.randn_like(y)
    (y * weight).sum().backward()
    with static.stock_layers():
        y_stock = stock_bn(stock_conv(x_seq))
        (y_stock * weight).sum().backward()
    assert y.stride(0) == 0 and torch.equal(y, y_stock)
    for ours, theirs in ((conv.weight.grad, stock_conv.weight.grad),
                         (bn.weight.grad, stock_bn.weight.grad)):  # equal up to summation order
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.abs().max())
    assert torch.allclose(bn.running_var, stock_bn.running_var, rtol=1e-6)
    assert torch.allclose(bn.running_mean, stock_bn.running_mean, rtol=1e-6, atol=1e-8)
    assert bn.num_batches_tracked == stock_bn.num_batches_tracked == 1
    bn.eval(), stock_bn.eval()
    with torch.no_grad():
        assert torch.allclose(bn(conv(x_seq)), stock_bn(stock_conv(x_seq)), atol=1e-5)


@pytest.mark.parametrize("shape,values,threads", [
    ((4, 3, 8, 8), "spikes", 1), ((4, 3, 7, 9), "spikes", 1), ((2, 5, 3, 6, 6), "spikes", 1),
    ((3, 2, 8, 8), "ties", 1), ((3, 2, 6, 10), "real", 1), ((3, 2, 6, 6), "nan", 1),
    ((2, 8, 16, 32, 30), "spikes", 2)])  # the last one split over two threads
def test_the_2x2_max_pool_gives_torchs_values_and_gradients_exactly(shape, values, threads):
    x = torch.rand(*shape)
    nan = torch.where(x > 0.8, torch.nan, x)
    x = {"spikes": (x > 0.7).float(), "ties": x.round(decimals=1), "real": x, "nan": nan}[values]
    mode = "m" if len(shape) == 5 else "s"
    ours, stock = MaxPool2d(2, 2, step_mode=mode), layer.MaxPool2d(2, 2, step_mode=mode)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out, expected = ours(a), stock(b)
        grad = torch.randn_like(out)
        out.backward(grad), expected.backward(grad)
    finally:
        torch.set_num_threads(before)
    assert ours._fast(a) == (shape[-1] % 2 == 0 and shape[-2] % 2 == 0)  # odd: PyTorch's
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


def test_bench_epoch_prints_three_candidates_and_the_ratios():
    result = runner.invoke(app, ["bench", "epoch", "--task", "synthetic", "--steps", "2",
                                 "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["candidate"] for r in report["results"]] == ["sgbench", "spikingjelly",
                                                           "plain pytorch"]
    assert all(r["samples_per_s"] > 0 for r in report["results"])
    assert set(report["ratios"]) == {"sgbench/spikingjelly", "sgbench/plain"}
    assert 0 <= report["data_share"] < 1 and report["threads"] == 1


def test_bench_methods_times_each_method_against_the_first_in_one_process():
    result = runner.invoke(app, ["bench", "methods", "--task", "synthetic", "--methods",
                                 "atan,ds_atgo,localzo", "--steps", "2", "--threads", "1",
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["method"]: r for r in json.loads(result.stdout)["results"]}
    assert list(rows) == ["atan", "ds_atgo", "localzo"] and rows["atan"]["vs_first"] == 1.0
    assert rows["ds_atgo"]["backend"] == "numba"  # the stepwise rule on the kernels
    assert rows["localzo"]["backend"] == "numba" and rows["localzo"]["median_s"] > 0
    bad = runner.invoke(app, ["bench", "methods", "--task", "synthetic", "--methods", "nosuch"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
