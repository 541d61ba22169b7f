"""The command line as a user meets it (Typer's test runner drives the real app)."""
import json

import pytest
from typer.testing import CliRunner

from sgbench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_run_json_prints_the_record_and_compare_aggregates(tmp_path):
    for seed in (0, 1):
        result = invoke("run", "--method", "sigmoid", "--task", "synthetic", "--seed", str(seed),
                        "--out", str(tmp_path), "--json")
        assert result.exit_code == 0, result.output
    result = invoke("compare", "--runs", str(tmp_path), "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 1 and rows[0]["n"] == 2 and rows[0]["seeds"] == [0, 1]
    scores = [json.loads(p.read_text())["metrics"]["top1"] for p in tmp_path.glob("*.json")]
    assert rows[0]["top1_mean"] == pytest.approx(sum(scores) / 2)
    for fmt in ("table", "md", "csv"):
        out = invoke("compare", "--runs", str(tmp_path), "--format", fmt).stdout
        assert "sigmoid" in out and "synthetic" in out


def test_json_output_is_only_the_record(tmp_path):
    result = runner.invoke(app, ["run", "-m", "atan", "-t", "synthetic", "--out", str(tmp_path),
                                 "--json"])
    record = json.loads(result.stdout)
    assert record["status"] == "ok" and record["method"]["name"] == "atan"


@pytest.mark.parametrize("args,code,needle", [
    (["run", "--method", "atnn", "--task", "digits", "--T", "4"], 2, "did you mean 'atan'"),
    (["run", "--method", "atan", "--task", "digits", "--T", "0"], 2, "--T must lie in [1, 1024]"),
    (["list", "things"], 2, "methods"),
    (["compare", "--runs", "/nonexistent/folder"], 1, "no such folder"),
    (["compare", "--format", "xml"], 2, "--format"),
])
def test_user_errors_are_one_line_and_non_zero(args, code, needle, tmp_path):
    result = invoke(*args)
    assert result.exit_code == code
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_list_methods_and_tasks():
    methods = json.loads(invoke("list", "methods", "--json").stdout)
    assert {"atan", "rect"} <= {m["name"] for m in methods}
    assert all(m["citation"] and m["fidelity"] for m in methods)
    tasks = json.loads(invoke("list", "tasks", "--json").stdout)
    assert {"digits", "synthetic"} <= {t["name"] for t in tasks}


def test_env_reports_versions_but_no_hostname():
    import socket

    env = json.loads(invoke("env", "--device", "cpu").stdout)
    assert env["torch"] and env["spikingjelly"] and env["neuron_backend"] == "numba"  # on CPU
    values = [v for v in env.values() if not isinstance(v, dict)] + list(env["git"].values())
    assert socket.gethostname() not in values and "hostname" not in env


def test_env_names_the_processor_the_kernels_are_compiled_for():
    """Issue 32: the processor and its widest vector instructions, as LLVM sees the host."""
    from llvmlite import binding

    from sgbench.environment import machine_label

    env = json.loads(invoke("env", "--device", "cpu").stdout)
    assert env["cpu_arch"] == binding.get_host_cpu_name()
    features = binding.get_host_cpu_features()
    if features.get("avx512f"):
        assert (env["vector_isa"], env["vector_bits"]) == ("AVX-512", 512)
    elif features.get("avx2"):
        assert (env["vector_isa"], env["vector_bits"]) == ("AVX2", 256)
    label = machine_label(env)
    assert label.startswith(env["device_name"]) and env["cpu_arch"] in label
    gpu = {"device": "cuda:0", "device_name": "NVIDIA H100", "cpu_arch": "znver4"}
    assert machine_label(gpu) == "NVIDIA H100"  # a GPU is named alone


def test_bench_neuron_prints_all_candidates_side_by_side():
    result = invoke("bench", "neuron", "--neurons", "2000", "--repeats", "2", "--json")
    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    rows = run["results"]
    assert [r["candidate"] for r in rows] == ["sgbench (numba backend)", "sgbench (torch backend)",
                                              "spikingjelly LIFNode", "plain autograd loop"]
    assert all(r["median_s"] > 0 and r["gb_per_s"] > 0 for r in rows)
    assert run["memory_bound_s"] > 0 and all(
        r["time_vs_memory_bound"] == r["median_s"] / run["memory_bound_s"] for r in rows)
    assert rows[0]["time_vs_sgbench"] == 1.0 and run["bytes_moved"] == 4 * 2000 * 24


def test_bench_train_times_each_method_and_rejects_unknown_ones():
    result = invoke("bench", "train", "--methods", "sigmoid,localzo", "--batch", "2", "--T", "1",
                    "--steps", "1", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert [r["method"] for r in rows] == ["sigmoid", "localzo"] and rows[0]["time_vs_first"] == 1
    assert [r["backend"] for r in rows] == ["numba", "numba"]  # localzo draws in the kernels
    assert all(r["median_s"] > 0 for r in rows)
    bad = invoke("bench", "train", "--methods", "sigmod")
    assert bad.exit_code == 2 and "did you mean 'sigmoid'" in bad.output


def test_show_prints_the_diagnostics_tables(tmp_path):
    result = invoke("run", "-m", "mpd_agl", "-t", "synthetic", "--out", str(tmp_path),
                    "--diag-every", "2")
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.json")
    shown = invoke("show", str(path))
    assert shown.exit_code == 0, shown.output
    for needle in ("mpd_agl [official-code]", "cover %", "vanilla %", "SGV", "TGC",
                   "deep-layer coverage", "after epoch 3"):
        assert needle in shown.stdout, needle
    assert "after epoch 2" in invoke("show", str(path), "--epoch", "2").stdout
    snap = json.loads(invoke("show", str(path), "--json").stdout)
    assert snap["epoch"] == 3 and snap["layers"][0]["shape"] == "rect"
    missing = invoke("show", str(path), "--epoch", "1")
    assert missing.exit_code == 2 and "no diagnostics after epoch 1" in missing.output
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    for bad, needle in ((other, "not an sgbench run record"), (tmp_path / "no.json", "no such")):
        result = invoke("show", str(bad))
        assert result.exit_code == 1 and needle in result.output and "Traceback" not in \
            result.output
