"""HUALE selection: rough image screening, then granular object ambiguity (method.md §9.1).

Tags: [SRC] = HUALE paper/blog, [CODE] = a reference implementation, [INF] = our inference.

- Two-stage "retrieve and rank" cascade [SRC]; flip branch D_f compared with the original D [SRC].
- Box-level flip inconsistency, defined when a branch is empty [INF]: for k in D against D_f and
  for k in D_f against D, ``v_k = 1`` if the other branch is empty or ``max IoU = 0``, else
  ``1 − M/2`` with CALD's agreement M [CODE] (see :mod:`huale.strategies.matching`).
- Stage 1 [INF]: ``S1 = max_k p̂_k·v_k`` over both branches (``stage1="max"``), or the CALD-style
  ``S1 = −C``, ``C = min(1, min_k |M_k − β|)`` over both branches with ``M_k = 2(1 − v_k)``, so
  unmatched boxes count as M = 0 (``stage1="cald"``). Boxes: detections with score ≥
  ``detection_threshold``. Images without a detection (original view) follow the rule shared
  with ``hua`` and ``cald`` (:mod:`huale.strategies.no_detection`): ranked last in a seeded
  random order, ``empty_fill_fraction`` f reserves ⌊f·B⌋ of the budget for a random sample of
  them (stage ``"fill"``), and they fill any budget the other images cannot use. An image whose
  only detections are in the flip branch still scores ``S1 = −∞`` in stage 1.
- Ties (equal scores, e.g. a weak model's zeros) are ordered at random (seeded), with a warning
  when most stage-2 candidates tie; HUA's thresholds adapt to a weak model's score range
  (:mod:`huale.strategies.hua`) [INF].
- Retrieval [INF]: the top ⌊μ·B⌋ by S1, μ = ``pool_multiplier`` = 2.
- Stage 2 [INF]: HUA (:class:`~huale.strategies.hua.Hua`, structure [CODE]) with u_j = v_j and
  PPAL difficulty class weights w_c from ``context.class_quality`` (§4.2 [CODE] formula;
  its use here [INF]); the top B by S2 are selected.
"""

from __future__ import annotations

import inspect

import numpy as np

from huale.options import check_known
from huale.predictions import FLIP, ORIGINAL, PredictionRecord
from huale.strategies.base import (
    ImageScore,
    Needs,
    Records,
    Selection,
    SelectionContext,
    Strategy,
    explain_box,
    view_of,
)
from huale.strategies.cascade import TwoStage
from huale.strategies.checks import check_choice, check_number
from huale.strategies.hua import Hua
from huale.strategies.matching import flip_inconsistency
from huale.strategies.no_detection import FILL, NoDetectionRule

__all__ = ["FILL", "Huale", "HualeScreening"]

STAGE1_SCORES = ("max", "cald")


class HualeScreening(Strategy):
    """HUALE stage 1: the image-level flip-inconsistency score S1 (module docstring)."""

    name = "huale_screening"

    def __init__(
        self, *, stage1: str = "max", detection_threshold: float = 0.05, beta: float = 1.3
    ):
        self.stage1 = check_choice("stage1", stage1, STAGE1_SCORES)
        self.detection_threshold = check_number(
            "detection_threshold", detection_threshold, low=0, high=1
        )
        self.beta = check_number("beta", beta, low=0, high=2)

    @property
    def needs(self) -> Needs:
        return Needs(views=(ORIGINAL, FLIP))

    def branches(self, record: PredictionRecord):
        """The detections D and D_f kept for scoring."""
        return [
            view_of(record, view, self.name, min_score=self.detection_threshold)
            for view in (ORIGINAL, FLIP)
        ]

    def is_empty(self, record: PredictionRecord) -> bool:
        """No detection in either branch."""
        return all(len(d) == 0 for d in self.branches(record))

    def score(
        self, records: Records, context: SelectionContext
    ) -> list[ImageScore]:
        out = []
        for record in records:
            dets, flipped = self.branches(record)
            if len(dets) == 0 and len(flipped) == 0:
                out.append(ImageScore(record.image_id, -np.inf))
                continue
            views = (ORIGINAL, FLIP)
            branches = (dets, flipped)
            v = (flip_inconsistency(dets, flipped), flip_inconsistency(flipped, dets))
            if self.stage1 == "max":
                values = [b.max_fg_prob * vb for b, vb in zip(branches, v, strict=True)]
                keys = np.concatenate(values)  # larger = more ambiguous
            else:
                values = [np.minimum(1.0, np.abs(2.0 * (1.0 - vb) - self.beta)) for vb in v]
                keys = -np.concatenate(values)  # C = min over boxes
            best = int(np.argmax(keys))
            branch = 0 if best < len(dets) else 1
            k = best - branch * len(dets)
            value = float(values[branch][k])
            image_score = value if self.stage1 == "max" else -value
            explanation = explain_box(
                branches[branch],
                k,
                value,
                context,
                view=views[branch],
                inconsistency=float(v[branch][k]),
            )
            out.append(ImageScore(record.image_id, image_score, objects=[explanation]))
        return out


# HUALE weighs HUA's class cells by PPAL difficulty (method.md §9.1 [INF]); HUA itself does
# not (its code has no class weights, §2 [CODE]). The one default where the two differ.
HUA_OVERRIDES: dict[str, object] = {"class_weights": "difficulty"}


def hua_option_defaults() -> dict[str, object]:
    """HUA's options with HUALE's defaults: ``option -> default`` (stage 2 of the cascade)."""
    params = inspect.signature(Hua).parameters.values()
    # an option both have (empty_fill_fraction) is the cascade's own: applied once, to the pool
    return {
        p.name: HUA_OVERRIDES.get(p.name, p.default) for p in params if p.name not in _OWN_OPTIONS
    }


class Huale(NoDetectionRule, TwoStage):
    """HUALE cascade: :class:`HualeScreening` retrieval, then :class:`Hua` ranking.

    Own options: ``pool_multiplier`` (μ), ``stage1``, ``beta`` and ``empty_fill_fraction`` of
    the module docstring; every :class:`Hua` option is accepted too, with HUA's default except
    :data:`HUA_OVERRIDES`. ``detection_threshold`` is shared by both stages.
    """

    name = "huale"

    def __init__(
        self,
        *,
        pool_multiplier: float = 2.0,
        stage1: str = "max",
        beta: float = 1.3,
        empty_fill_fraction: float = 0.0,
        **hua_options: object,
    ):
        check_known(hua_options, _OWN_OPTIONS + list(hua_option_defaults()), "options",
                    where="strategy 'huale'")
        ranking = Hua(**{**HUA_OVERRIDES, **hua_options})
        screening = HualeScreening(
            stage1=stage1, detection_threshold=ranking.detection_threshold, beta=beta
        )
        super().__init__(screening, ranking, pool_multiplier=pool_multiplier)
        self.empty_fill_fraction = check_number(
            "empty_fill_fraction", empty_fill_fraction, low=0, high=1
        )
        self.name = "huale"

    @property
    def no_detection_threshold(self) -> float:
        return self.first.detection_threshold

    def select_detected(self, records, budget, context, costs) -> Selection:
        """The cascade, among the images with a detection."""
        return TwoStage.select(self, records, budget, context, costs=costs)


_OWN_OPTIONS = ["pool_multiplier", "stage1", "beta", "empty_fill_fraction"]
# the signature the registry shows (``strategy_options("huale")``): own options, then HUA's
Huale.__init__.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [
        p
        for p in inspect.signature(Huale.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in hua_option_defaults().items()
    ]
)
