"""The paper's analyses: token-mixing weights as images, order invariance, layer similarity."""

from .cka import CkaResult, cka_matrix, layer_grams, linear_cka
from .token_mixing import BlockUnits, analyze_token_mixing, sorted_unit_order, token_mixing_units

__all__ = [
    "BlockUnits",
    "CkaResult",
    "analyze_token_mixing",
    "cka_matrix",
    "layer_grams",
    "linear_cka",
    "sorted_unit_order",
    "token_mixing_units",
]
