"""The paper's analyses: token-mixing weights as images, order invariance, layer similarity.

Each analysis is a library function returning numbers (`analyze_token_mixing`,
`order_invariance_study`, `cka_matrix`) plus a `runs` function that reads checkpoints or data
sets by name and writes JSON + PNG (what ``mlpmixer analyze tokens|permutation|cka`` calls).
"""

from .baseline_cnn import SmallCnn
from .cka import CkaResult, cka_matrix, layer_grams, linear_cka
from .order_study import ExactCheck, StudyResult, exact_check, order_invariance_study
from .permutation import VARIANTS, Permutations, fold_permutation
from .runs import cka_run, permutation_run, token_mixing_run
from .token_mixing import BlockUnits, analyze_token_mixing, sorted_unit_order, token_mixing_units

__all__ = [
    "VARIANTS",
    "BlockUnits",
    "CkaResult",
    "ExactCheck",
    "Permutations",
    "SmallCnn",
    "StudyResult",
    "analyze_token_mixing",
    "cka_matrix",
    "cka_run",
    "exact_check",
    "fold_permutation",
    "layer_grams",
    "linear_cka",
    "order_invariance_study",
    "permutation_run",
    "sorted_unit_order",
    "token_mixing_run",
    "token_mixing_units",
]
