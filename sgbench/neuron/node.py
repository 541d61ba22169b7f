"""The spiking-neuron module: one engine for every method, usable inside SpikingJelly models.

It subclasses SpikingJelly's ``MemoryModule``, so ``functional.reset_net`` and
``functional.set_step_mode`` apply to it, and takes ``[T, B, ...]`` input in multi-step mode.
"""
from __future__ import annotations

import math

import torch
from spikingjelly.activation_based import base
from torch import nn

from ..config import BACKENDS, CHARGES, RESETS
from ..errors import UserError
from .capture import GradCapture
from .cupy_backend import CupySequenceFn, cupy_available
from .cupy_source import has_kernel
from .engine import Dynamics, FireResetFn, SequenceFn, charge, fire_reset
from .numba_backend import NumbaSequenceFn, kernel_kind, numba_available
from .observe import step_stats
from .rules import FixedRule, LayerRule

Tensor = torch.Tensor


class SpikingNeuron(base.MemoryModule):
    """Charge (tau | mul | if), exact fire against theta[t], hard or soft reset.

    - ``tau``: SpikingJelly's LIF, H = V + (X - (V - v_reset)) / tau (decay_input) or
      H = V - (V - v_reset) / tau + X; with ``learnable_decay`` its PLIF (Fang et al., ICCV
      2021, Eq. 7): 1/tau = sigmoid(w), w learned from -log(tau - 1), so dH/dw = (X - V +
      v_reset) sigmoid'(w) under decay_input.
    - ``mul``: iterative LIF (Wu et al. 2019), H = k V + X, k fixed or learnable as sigmoid(w).
    - ``if``: H = V + X.

    The surrogate, threshold and its parameters come from ``rule`` (set by a method).
    """

    def __init__(self, charge: str = "tau", tau: float = 2.0, decay_input: bool = True,
                 decay: float = 0.5, learnable_decay: bool = False, v_threshold: float = 1.0,
                 reset: str = "hard", v_reset: float = 0.0, detach_reset: bool = False,
                 step_mode: str = "m", backend: str = "auto", require_fused: bool = False,
                 rule: LayerRule | None = None):
        super().__init__()
        _check_choice("neuron.charge", charge, CHARGES)
        _check_choice("neuron.reset", reset, RESETS)
        _check_choice("neuron.backend", backend, BACKENDS)
        if charge == "tau" and tau <= 1.0:
            raise UserError(f"neuron.tau must be > 1 for the tau charge, got {tau}")
        if charge == "mul" and not 0.0 < decay < 1.0:
            raise UserError(f"neuron.decay must lie in (0, 1), got {decay}")
        self.charge, self.tau, self.decay_input = charge, float(tau), bool(decay_input)
        self.v_threshold, self.reset_mode = float(v_threshold), reset
        self.v_reset, self.detach_reset, self.backend = float(v_reset), bool(detach_reset), backend
        self.require_fused = bool(require_fused)
        self.used_backend: str | None = None  # the backend of the last training/eval forward
        self.step_mode = step_mode
        self.w = None
        if charge == "mul" and learnable_decay:
            self.w = nn.Parameter(torch.tensor(math.log(decay / (1.0 - decay))))
        if charge == "tau" and learnable_decay:  # PLIF: 1/tau = sigmoid(w)
            self.w = nn.Parameter(torch.tensor(-math.log(tau - 1.0)))
        self._decay = decay
        self.rule = rule if rule is not None else FixedRule("sigmoid", [4.0])
        self.observe = False  # when True, per-timestep statistics of the last forward go to .stats
        self.stats: dict[str, Tensor] | None = None
        self.capture: GradCapture | None = None  # when set, the backward pass reports dL/dH here
        # set when a 2x2 max-pool follows (models/pool.py): the numba kernels then pool the spikes
        # in their own pass and hand the result on with them
        self.max_pool_after = False
        self.keep_h = False  # when True (and training), the last H [T, ...] stays in .h_seq
        self._h_steps: list[Tensor] = []  # H of single steps (recurrent layers), while kept
        self.h_seq = None
        self.register_memory("v", 0.0)
        self.register_memory("t", 0)

    def supported_step_mode(self):
        return ("s", "m")

    @property
    def h_seq(self) -> Tensor | None:
        """The last sequence's H [T, ...] when ``keep_h`` (and training): a multi-step pass's,
        or the steps of single-step calls since the sequence began."""
        return torch.stack(self._h_steps) if self._h_steps else self._h_seq

    @h_seq.setter
    def h_seq(self, value: Tensor | None) -> None:
        self._h_seq, self._h_steps = value, []

    # -- constants of the dynamics -----------------------------------------------------------
    def decay_factor(self) -> float | Tensor:
        """k in H = k V + c X + b (a tensor when learnable)."""
        if self.charge == "tau":
            return 1.0 - (torch.sigmoid(self.w) if self.w is not None else 1.0 / self.tau)
        if self.charge == "if":
            return 1.0
        return torch.sigmoid(self.w) if self.w is not None else float(self._decay)

    def decay_value(self) -> float:
        """The decay factor k as a number (detached)."""
        k = self.decay_factor()
        return float(k.detach()) if torch.is_tensor(k) else float(k)

    @property
    def dynamics(self) -> Dynamics:
        hard = self.reset_mode == "hard"
        c, b = 1.0, 0.0
        if self.charge == "tau" and self.w is None:  # PLIF's gain and drive: _plif_input
            c = 1.0 / self.tau if self.decay_input else 1.0
            b = self.v_reset / self.tau if hard else 0.0
        return Dynamics(c=c, b=b, hard_reset=hard, v_reset=self.v_reset if hard else 0.0,
                        detach_reset=self.detach_reset)

    # -- forward -----------------------------------------------------------------------------
    def _fused(self, x: Tensor) -> bool:
        """Whether this forward runs the cupy kernels (``backend``: auto, torch or cupy): any
        shape, a plugin's own through its precomputed surrogate (``used_backend`` says which).

        Diagnostic passes (``capture`` set) always run the torch reference. Asking for ``cupy``,
        or for ``require_fused``, where the kernels cannot run is an error, never a silent
        fallback."""
        if self.capture is not None:
            return False
        fused = x.is_cuda and cupy_available() and self.backend != "torch"
        if not fused and (self.backend == "cupy" or self.require_fused):
            raise UserError(
                "the fused cupy backend was required but cannot run here: it needs a CUDA "
                f"tensor (got {x.device}) and CuPy (pip install -e '.[cuda]')" + (
                    "; backend=torch was asked for" if self.backend == "torch" else ""))
        self.used_backend = "torch" if not fused else (
            "cupy" if has_kernel(self.rule.shape) else "cupy-precomputed")
        return fused

    def _cpu_fused(self, x: Tensor) -> bool:
        """Whether this sequence runs the numba kernels: on CPU in ``auto`` mode, float32, a
        built-in shape, no dL/dH capture (diagnostic passes run the torch reference), Numba
        importable."""
        fused = (self.backend == "auto" and self.capture is None and not x.is_cuda
                 and x.dtype == torch.float32 and numba_available()
                 and kernel_kind(self.rule.shape) is not None)
        if fused:
            self.used_backend = "numba"
        return fused

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        if self._fused(x_seq):
            return self._cupy_forward(x_seq)
        x = self._plif_input(_state_dtype(x_seq))
        T, k, dyn, shape = x.shape[0], self._k_like(x), self.dynamics, self.rule.shape
        pooled = []  # the spikes' 2x2 max-pool, where the numba kernels make it
        if self.rule.mode == "sequence":
            theta, p = (_like(a, x) for a in self.rule.thresholds(self, T))
            if self._cpu_fused(x):
                frame = one_frame(x)
                s, v, h, *pooled = NumbaSequenceFn.apply(
                    x if frame is None else frame, self._initial_v(x[0], as_number=True), k,
                    theta, p, shape, dyn, frame is not None, self._pool_in_kernels(theta),
                    self.keep_h or self.observe)
            else:
                s, v, h = SequenceFn.apply(x, self._initial_v(x[0]), k, theta, p, shape, dyn,
                                           self.capture)
        elif self.rule.detached_steps and self._cpu_fused(x):
            s, v, h, theta, p, *pooled = self._stepwise_fused(x, k, dyn, shape)
        else:
            def fire(h, theta_t, p_t, t):
                return FireResetFn.apply(h, _like(theta_t, x), _like(p_t, x), shape, dyn,
                                         self.capture, t)
            s, v, h, theta, p = self._stepwise(x, self._initial_v(x[0]), k, dyn, fire)
        out = self._finish(x_seq, s, v, h, theta, p)
        if pooled:  # the next MaxPool2d (models/pool.py) returns this
            out.max_pool_2x2 = (out._version, self._emit(pooled[0], theta).to(out.dtype))
        return out

    def _pool_in_kernels(self, theta: Tensor) -> bool:
        """Whether the numba kernels pool the spikes for a 2x2 max-pool that follows. A scaled
        output theta[t] S[t] pools as theta[t] times the pooled spikes where theta > 0 (a
        positive scale keeps the maximum's place)."""
        return self.max_pool_after and (not self.rule.scaled_output
                                        or bool((theta > 0).all()))

    def _finish(self, x_seq: Tensor, s: Tensor, v: Tensor, h: Tensor, theta: Tensor,
                p: Tensor) -> Tensor:
        """Keep the state (and H when asked), observe, tell the rule, return spikes (scaled by
        theta where the rule says so) in the input's dtype."""
        self.v = v
        self.h_seq = h if self.keep_h and self.training else None
        if self.observe:
            self._observe(h.detach(), s.detach(), theta.detach(), p.detach(), append=False)
        if self.training:
            self.rule.end_of_sequence(self, s.detach(), v.detach())
        return self._emit(s, theta).to(x_seq.dtype)

    def _emit(self, s: Tensor, theta: Tensor) -> Tensor:
        if not self.rule.scaled_output:
            return s
        return s * theta.to(s.dtype).reshape(theta.shape + (1,) * (s.dim() - theta.dim()))

    def _cupy_forward(self, x_seq: Tensor) -> Tensor:
        """The fused path: half-precision input stays half, state and H are fp32."""
        x_seq = self._plif_input(x_seq)
        T, dev, dyn = x_seq.shape[0], x_seq.device, self.dynamics
        k = self.decay_factor()
        k = k.float() if torch.is_tensor(k) else k
        v = self._initial_v(x_seq[0].float(), as_number=self.rule.mode == "sequence")
        if self.rule.mode == "sequence":
            theta, p = (a.to(device=dev, dtype=torch.float32)
                        for a in self.rule.thresholds(self, T))
            s, v, h = CupySequenceFn.apply(x_seq, v, k, theta, p, self.rule.shape, dyn)
        else:
            s, v, h, theta, p = self._stepwise(
                x_seq.float(), v, k, dyn, lambda h, theta_t, p_t, t: self._cupy_fire(
                    h, theta_t, p_t, dyn))
        return self._finish(x_seq, s, v, h, theta, p)

    def _cupy_fire(self, h: Tensor, theta_t: Tensor, p_t: Tensor, dyn: Dynamics):
        """Fire and reset alone: the T=1 kernel on H itself, with k = 0, c = 1, b = 0."""
        fire = Dynamics(1.0, 0.0, dyn.hard_reset, dyn.v_reset, dyn.detach_reset)
        theta_t, p_t = (a.to(device=h.device, dtype=torch.float32) for a in (theta_t, p_t))
        s, v, _ = CupySequenceFn.apply(h.float()[None], 0.0, 0.0, theta_t.reshape(1), p_t[None],
                                       self.rule.shape, fire)
        return s[0].to(h.dtype), v

    def _stepwise_fused(self, x: Tensor, k, dyn: Dynamics, shape):
        """A stepwise rule whose outputs take no gradient, on the numba kernels: one pass
        without a graph steps the rule (it sees each H[t] and updates what it tracks, once),
        then the kernels run the sequence at the theta[t] and p[t] it gave, and their fused
        BPTT is the backward. Returns (s, v, h, theta, p, [pooled])."""
        with torch.no_grad():
            theta, p = self._steps_without_graph(x.detach(), _detached(k), dyn)
        frame = one_frame(x)
        s, v, h, *pooled = NumbaSequenceFn.apply(
            x if frame is None else frame, self._initial_v(x[0], as_number=True), k, theta, p,
            shape, dyn, frame is not None, self._pool_in_kernels(theta),
            self.keep_h or self.observe)
        return (s, v, h, theta, p, *pooled)

    def _steps_without_graph(self, x: Tensor, k, dyn: Dynamics) -> tuple[Tensor, Tensor]:
        """theta [T] and p [T, P] a stepwise rule gives, stepping it through the sequence (its
        tracked statistics updated once), nothing else kept."""
        v, thetas, ps = self._initial_v(x[0]).detach(), [], []
        s = torch.empty_like(x[0])
        for t, x_t in enumerate(x.unbind(0)):
            h = charge(x_t, v, k, dyn)  # its own tensor: the rule may keep it
            theta_t, p_t = self.rule.at_step(self, t, h)
            _, v = fire_reset(h, _like(theta_t, h), dyn, out=s)
            thetas.append(theta_t), ps.append(p_t)
        return torch.stack(thetas), torch.stack(ps)

    def _stepwise(self, x, v, k, dyn, fire):
        """Charge, then the rule's theta[t] and p[t] from H[t], then ``fire(h, theta_t, p_t, t)``
        -> (spikes, potential): one step at a time."""
        spikes, hs, thetas, ps = [], [], [], []
        for t, x_t in enumerate(x.unbind(0)):  # unbind: x[t]'s backward would fill all T
            h = charge(x_t, v, k, dyn)
            theta_t, p_t = self.rule.at_step(self, t, h)
            s, v = fire(h, theta_t, p_t, t)
            spikes.append(s), hs.append(h), thetas.append(theta_t), ps.append(p_t)
        return torch.stack(spikes), v, torch.stack(hs), torch.stack(thetas), torch.stack(ps)

    def single_step_forward(self, x_in: Tensor) -> Tensor:
        x, t = self._plif_input(_state_dtype(x_in)), self.t
        k, dyn = self._k_like(x), self.dynamics
        h = charge(x, self._initial_v(x), k, dyn)
        if self.rule.mode == "sequence":
            theta, p = self.rule.thresholds(self, t + 1)
            theta_t, p_t = _like(theta[t], x), _like(p[t], x)
        else:
            theta_t, p_t = (_like(a, x) for a in self.rule.at_step(self, t, h))
        if self._fused(x_in):
            s, self.v = self._cupy_fire(h, theta_t, p_t, dyn)
        else:
            s, self.v = FireResetFn.apply(h, theta_t, p_t, self.rule.shape, dyn, self.capture, t)
        self.t = t + 1
        if self.keep_h and self.training:
            if t == 0:
                self.h_seq = None
            self._h_steps.append(h)
        if self.observe:
            self._observe(h.detach()[None], s.detach()[None], theta_t.detach()[None],
                          p_t.detach()[None], append=t > 0)
        return self._emit(s, theta_t).to(x_in.dtype)

    def end_single_steps(self, spikes: Tensor) -> None:
        """After a sequence of single steps (a recurrent layer's loop): tell the rule, as a
        multi-step forward does (LocalZO draws anew, TrSG updates its running potential)."""
        if self.training:
            v = self.v if torch.is_tensor(self.v) else torch.full_like(spikes[-1], self.v)
            self.rule.end_of_sequence(self, spikes.detach(), v.detach())

    def _plif_input(self, x: Tensor) -> Tensor:
        """Under PLIF the learnable 1/tau also scales the input and the reset drive: the engine
        charges H = k V + X' with k = 1 - 1/tau and X' = X / tau + v_reset / tau (decay_input,
        hard reset), so autograd gives w both parts of dH/dw. Other charges: X itself."""
        if self.charge != "tau" or self.w is None:
            return x
        d = torch.sigmoid(self.w).to(x.dtype)
        x = x * d if self.decay_input else x
        return x + d * self.v_reset if self.reset_mode == "hard" and self.v_reset else x

    def _k_like(self, x: Tensor) -> float | Tensor:
        k = self.decay_factor()
        return k.to(x.dtype) if torch.is_tensor(k) else k

    def _initial_v(self, x0: Tensor, as_number: bool = False) -> Tensor | float:
        """The potential carried over, or at a new sequence the rule's V[0] or the reset value
        (``as_number``: the reset value as a float, for the fused kernels, which need no tensor)."""
        if torch.is_tensor(self.v):
            return self.v
        start = self.rule.initial_potential(self)
        if start is None:
            return float(self.v) if as_number else torch.full_like(x0, float(self.v))
        return start.detach().to(x0).expand_as(x0).clone()

    # -- observability -----------------------------------------------------------------------
    @torch.no_grad()
    def _observe(self, h, s, theta, p, append: bool):
        """The last forward's per-timestep statistics (observe.py) into ``stats``; single steps
        append theirs."""
        stats = step_stats(h, s, theta, p, self.rule.shape, self.v_threshold)
        if append and self.stats is not None:
            stats = {name: torch.cat([self.stats[name], value]) for name, value in stats.items()}
        self.stats = stats

    def extra_repr(self) -> str:
        return (f"charge={self.charge}, v_threshold={self.v_threshold}, reset={self.reset_mode}, "
                f"detach_reset={self.detach_reset}, backend={self.backend}, "
                f"step_mode={self.step_mode}")


def one_frame(x: Tensor) -> Tensor | None:
    """The frame a static layer repeated over T into ``x`` (models/static.py), else None."""
    frame = getattr(x, "static_source", None)
    if frame is None or x.stride(0) != 0 or frame.shape != x.shape[1:]:
        return None
    return frame


def _detached(k: float | Tensor) -> float | Tensor:
    return k.detach() if torch.is_tensor(k) else k


def _like(a: Tensor, x: Tensor) -> Tensor:
    return a.to(device=x.device, dtype=x.dtype)


def _state_dtype(x: Tensor) -> Tensor:
    """The neuron state is kept in fp32 when the input is half precision."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{what} must be one of {', '.join(choices)}; got '{value}'")


def check_backend(backend: str, require_fused: bool, device: torch.device) -> None:
    """Before any training: a fused backend that was asked for must be able to run."""
    if (backend == "cupy" or require_fused) and not (device.type == "cuda" and cupy_available()):
        raise UserError(f"the fused cupy backend was required (neuron.backend={backend}, "
                        f"require_fused={require_fused}) but needs CUDA and CuPy; device is "
                        f"{device}, CuPy {'is' if cupy_available() else 'is not'} usable "
                        f"(pip install -e '.[cuda]')")
    if require_fused and backend == "torch":
        raise UserError("--require-fused contradicts neuron.backend=torch")


def auto_backend(device: torch.device) -> str:
    """The backend ``auto`` picks on ``device`` for a built-in shape on float32 input."""
    if device.type == "cuda":
        return "cupy" if cupy_available() else "torch"
    return "numba" if numba_available() else "torch"


def used_backend(model: nn.Module) -> str | None:
    """The backend the model's neurons ran on last: torch, cupy, or mixed."""
    used = {n.used_backend for n in neurons(model) if n.used_backend}
    return used.pop() if len(used) == 1 else ("mixed" if used else None)


def neurons(model: nn.Module) -> list[SpikingNeuron]:
    """The engine's neurons of a model, in forward (registration) order."""
    return [m for m in model.modules() if isinstance(m, SpikingNeuron)]


def preceding(model: nn.Module, kinds: tuple[type, ...]
              ) -> dict[SpikingNeuron, tuple[str, nn.Module] | None]:
    """Each engine neuron, in forward order, with the module of ``kinds`` feeding it (name and
    module): the norm layer or the weights. A neuron whose feeders were traced (``fed_by``, set
    for the zoo's non-sequential models) takes the traced one of that kind, or None; else the
    last module of ``kinds`` registered before it."""
    out, last = {}, None
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            last = (name, module)
        elif isinstance(module, SpikingNeuron):
            traced = getattr(module, "fed_by", None)
            out[module] = last if traced is None else next(
                (entry for entry in traced if isinstance(entry[1], kinds)), None)
    return out
