"""ST-ASG: A2SG's adaptive window with a symmetric surrogate (reconstruction).

Kang, Kweon, Seo et al., ICML 2026 (arXiv 2606.11236): ST-ASG is the spatio-temporal window
search of A2SG (see ``a2sg``) without the asymmetric ramp. The symmetric shape is a parameter:
``symmetric=tri`` (default; the paper's Theorem 4.1 finds TRI has the lowest CV among
symmetric surrogates), g = (1/beta) max(0, 1 - |u - V_th| / beta), or ``symmetric=box``,
g = 1/(2 beta) on |u - V_th| <= beta. Both have unit area.
"""
from dataclasses import dataclass

import torch

from sgbench.errors import UserError
from sgbench.methods.a2sg import A2SG

SYMMETRIC = {"tri": "triangle", "box": "rect"}


class StAsg(A2SG):
    citation = ("Kang, Kweon, Seo et al., A2SG, ICML 2026 (arXiv 2606.11236): ST-ASG, the "
                "symmetric variant; reconstructed from secondary sources")
    kinds = ("adaptive",)

    @dataclass
    class Params:
        symmetric: str = "tri"  # tri | box
        beta0: float = 0.5
        search: bool = True
        i_update: int = 1
        beta_min: float = 0.1
        beta_max: float = 2.0
        n_obs: int = 5
        n_eval: int = 15
        seed: int = 0
        sgv: str = "var"

    def __init__(self, params=None):
        super().__init__(params)
        if self.params.symmetric not in SYMMETRIC:
            raise UserError(f"symmetric must be one of {', '.join(SYMMETRIC)}; "
                            f"got '{self.params.symmetric}'")
        self.shape = SYMMETRIC[self.params.symmetric]

    def shape_params(self, beta: torch.Tensor) -> torch.Tensor:
        if self.shape == "triangle":  # (left, right, height)
            return torch.stack([beta, beta, 1 / beta], dim=1)
        half = torch.full_like(beta, 0.5)  # (left, right, area_left, area_right)
        return torch.stack([beta, beta, half, half], dim=1)
