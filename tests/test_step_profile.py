"""`sgbench bench profile`: the parts of a training step add up to the step, and the neuron,
convolution and norm parts are found forward and backward."""
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.bench.profile import part_of, profile_steps


def test_names_map_to_parts():
    assert part_of("ConvolutionBackward0") == "convolutions"
    assert part_of("SequenceFn") == part_of("SpikingNeuron") == "spiking neurons"
    assert part_of("NativeBatchNormBackward0") == part_of("BatchNorm2d") == "norms"
    assert part_of("MaxPool2d") == "pooling"


def test_the_parts_of_a_step_add_up_and_cover_the_layers():
    result = profile_steps("synthetic", "atan", steps=3, warmup=1)
    shares = {(r["part"], r["phase"]): r["share"] for r in result["parts"]}
    assert abs(sum(shares.values()) - 1.0) < 0.02
    for part in ("spiking neurons", "convolutions", "norms"):
        assert shares.get((part, "forward"), 0) > 0 and shares.get((part, "backward"), 0) > 0
    assert shares[("optimizer", "step")] > 0


def test_the_command_prints_the_table():
    result = CliRunner().invoke(app, ["bench", "profile", "--task", "synthetic", "--steps", "2",
                                      "--threads", "1"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "spiking neurons" in result.output and "ms a step" in result.output
