"""How much Dspike's temperature choice changes when it differences k drawn first-layer weights
instead of the whole layer (Li et al., NeurIPS 2021, Alg. 1), at the model states of a run.

At the start of each epoch: the finite-difference gradient of every first-layer weight and the
surrogate gradients of the three candidate temperatures on the run's probe batch; the whole
layer's choice; for each k, 2,000 draws of k weights: how often their choice is the whole layer's
and the whole layer's cosine given up on average ("regret"). The yardstick: the whole layer's
choice on a second probe batch of the same size (the next images of the probe's permutation),
and its regret on the first. Then one epoch of Dspike with the whole layer's choice (as a run
trains it).

    python results/evidence/dspike/fd_weights.py TASK SEED EPOCHS >> fd_weights.jsonl

One JSON line per epoch. Run from the repository root, one thread.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from sgbench.alloc import tune_allocator
from sgbench.api import cosine, finite_difference, first_weight_layer, neurons, surrogate_gradient
from sgbench.measure.probe import Probe
from sgbench.train.loop import train_epoch
from sgbench.train.setup import RunRequest, prepare

KS = (16, 32, 48, 64, 96, 128)
DRAWS = 2000


def second_probe(setup) -> Probe:
    """A probe of the run's size: the next images of the probe's own order."""
    p = setup.probe
    return Probe.for_run(setup.cfg, setup.data.train, p.loss_fn, p.aux_loss, setup.device,
                         skip=p.y.shape[0])


def gradients(setup, probe, candidates):
    """The whole first layer's finite differences and each candidate b's surrogate gradient."""
    model, q = setup.model, setup.method.params
    layer = first_weight_layer(model)
    fd = finite_difference(model, probe, layer, q.fd_eps, torch.arange(layer.weight.numel()))
    sg = {}
    for b in candidates:
        set_b(model, b)
        sg[b] = surrogate_gradient(model, probe, layer).double()
    return fd, sg


def set_b(model, b: float) -> None:
    for node in neurons(model):
        node.rule.b.fill_(b)


def choice(fd, sg, index=slice(None)):
    scores = {b: cosine(g[index], fd[index]) for b, g in sg.items()}
    return max(scores, key=lambda b: -2 if scores[b] is None else scores[b]), scores


def drawn(fd, sg, whole, best, k, generator):
    hits, regret = 0, 0.0
    for _ in range(DRAWS):
        pick, _ = choice(fd, sg, torch.randperm(len(fd), generator=generator)[:k])
        hits += pick == best
        regret += whole[best] - whole[pick]
    return {"agree": hits / DRAWS, "regret": regret / DRAWS}


def main(task: str, seed: int, epochs: int) -> None:
    tune_allocator()
    torch.set_num_threads(1)
    setup = prepare(RunRequest(method="dspike", task=task, epochs=epochs, seed=seed, threads=1,
                               out_dir=Path(tempfile.mkdtemp())))
    other, q = second_probe(setup), setup.method.params
    for epoch in range(epochs):
        b = float(neurons(setup.model)[0].rule.b)
        candidates = [c for c in (b, b + q.step, b - q.step) if c >= q.b_min]
        start = time.perf_counter()
        fd, sg = gradients(setup, setup.probe, candidates)
        seconds = time.perf_counter() - start
        best, whole = choice(fd, sg)
        best2, whole2 = choice(*gradients(setup, other, candidates))
        generator = torch.Generator().manual_seed(1234 + epoch)
        print(json.dumps({
            "task": task, "seed": seed, "epoch": epoch, "b": b, "cosine": whole, "best": best,
            "whole_layer_s": seconds,
            "second_probe": {"cosine": whole2, "best": best2, "regret": whole[best] - whole[best2]},
            "k": {k: drawn(fd, sg, whole, best, k, generator) for k in KS}}), flush=True)
        set_b(setup.model, best)
        train_epoch(setup.train_model, setup.method, setup.train_loader, setup.optimizer,
                    setup.loss_fn, setup.cfg["T"], setup.cfg["data"]["encoding"], setup.device,
                    setup.precision)
        if setup.schedule is not None:
            setup.schedule.step()
    setup.lock.release()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
