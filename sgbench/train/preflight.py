"""Before the first training step: the data's counts, label range and shape, and one sample
through the model, so that a task whose data and network disagree ends in one line naming what
disagrees (not in a library exception from inside the first step)."""
from __future__ import annotations

from typing import Any

import torch
from spikingjelly.activation_based import functional
from torch import nn

from ..data import encode
from ..errors import UserError


def check_data(data: Any) -> None:
    """Both splits hold samples, there are two or more classes, and every stored label lies in
    [0, classes)."""
    if data.num_classes < 2:
        raise UserError(f"the data has {data.num_classes} classes; a classifier needs 2 or more")
    for name, split in (("training", data.train), ("test", data.test)):
        if len(split) == 0:
            raise UserError(f"the {name} set is empty")
        labels = getattr(split, "y", None)  # stored splits; streamed ones are checked per batch
        if labels is not None and (labels.min() < 0 or labels.max() >= data.num_classes):
            raise UserError(f"the {name} set has labels outside [0, {data.num_classes}): "
                            f"{int(labels.min())} to {int(labels.max())}")


def check_model_takes_data(model: nn.Module, data: Any, cfg: dict[str, Any],
                           device: torch.device) -> None:
    """One sample through the model in eval mode, as training will feed it: shapes that do not
    fit (an image the network's pools shrink to nothing, a header that disagrees) end here. The
    random stream and the model's state are left as they were."""
    was_training, x = model.training, None
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            x, _ = data.train[0]  # a loader's augmentation draws from the forked stream
            model.eval()
            logits = model(encode(x.unsqueeze(0).to(device), cfg["T"], cfg["data"]["encoding"]))
    except UserError:
        raise
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UserError(f"the model ({cfg['model']['arch']}) cannot take the data's samples "
                        f"(shape {tuple(x.shape) if x is not None else '?'}): "
                        f"{type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]}") from exc
    finally:
        functional.reset_net(model)
        model.train(was_training)
    if logits.shape[-1] != data.num_classes:
        raise UserError(f"the model gives {logits.shape[-1]} logits for {data.num_classes} classes")
