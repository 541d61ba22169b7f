"""ST-ASG: A2SG's adaptive window with a symmetric surrogate (reconstruction).

Kang, Kweon, Seo et al., ICML 2026 (arXiv 2606.11236): ST-ASG is the spatio-temporal window
search of A2SG (see ``a2sg``) without the asymmetric ramp. The symmetric shape is a parameter:
``symmetric=tri`` (default; the paper's Theorem 4.1 finds TRI has the lowest CV among
symmetric surrogates), g = (1/beta) max(0, 1 - |u - V_th| / beta), or ``symmetric=box``,
g = 1/(2 beta) on |u - V_th| <= beta. Both have unit area.
"""
from dataclasses import dataclass

import torch

from sgbench.api import param
from sgbench.methods.a2sg import A2SG, SGV_FORMS

SYMMETRIC = {"tri": "triangle", "box": "rect"}


class StAsg(A2SG):
    citation = ("Kang, Kweon, Seo et al., A2SG, ICML 2026 (arXiv 2606.11236): ST-ASG, the "
                "symmetric variant; reconstructed from secondary sources")
    kinds = ("adaptive",)
    fidelity = "reconstruction"

    @dataclass
    class Params:
        symmetric: str = param("tri", choices=tuple(SYMMETRIC))
        beta0: float = param(0.5, gt=0)
        search: bool = True
        i_update: int = param(1, ge=1)
        beta_min: float = param(0.25, gt=0)  # as a2sg (docs/methods.md, section 6)
        beta_max: float = param(1.0, gt=0)
        n_obs: int = param(5, ge=1)
        n_eval: int = param(15, ge=1)
        seed: int = 0
        sgv: str = param("std", choices=SGV_FORMS)
        incumbent: bool = True

    def __init__(self, params=None):
        super().__init__(params)
        self.shape = SYMMETRIC[self.params.symmetric]

    def shape_params(self, beta: torch.Tensor) -> torch.Tensor:
        if self.shape == "triangle":  # (left, right, height)
            return torch.stack([beta, beta, 1 / beta], dim=1)
        half = torch.full_like(beta, 0.5)  # (left, right, area_left, area_right)
        return torch.stack([beta, beta, half, half], dim=1)
