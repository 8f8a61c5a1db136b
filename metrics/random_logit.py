"""Random logit test (Sixt et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from benchmark.core.seeding import sample_generator
from benchmark.metrics.catalog import register_metric
from benchmark.metrics.functional.similarity import spearman
from benchmark.metrics.per_sample import PerSampleMetric

#: The seed stream of the other class's draw.
OTHER_CLASS_STREAM = 201


def other_classes(sample_ids: Sequence[int], classes: Tensor, class_count: int) -> Tensor:
    """Per sample one class other than its ``classes[i]``, uniform over the other
    ``class_count - 1``, drawn from the sample id's own generator."""
    drawn = []
    for sample_id, c in zip(sample_ids, classes.tolist()):
        k = int(torch.randint(class_count - 1, (1,), generator=sample_generator(int(sample_id), OTHER_CLASS_STREAM)))
        drawn.append(k + 1 if k >= c else k)
    return torch.tensor(drawn, dtype=torch.long, device=classes.device)


@register_metric("random_logit", "Random Logit")
class RandomLogit(PerSampleMetric):
    r"""Random logit test in percent (lower is better): how similar the map of c is to the map
    of a random other class.

    .. math:: \mathrm{RL} = 100\,\rho_S\big(E(x, c), E(x, c')\big), \quad c' \sim U(\{1..K\} \setminus \{c\})

    with :math:`\rho_S` Spearman's rank correlation and :math:`c'` drawn per sample id. A method
    whose maps do not depend on the class (Random-CAM, Eigen-CAM, LOTS towards the zero
    target) is reported as not applicable. Sixt, Granz & Landgraf, "When Explanations Lie: Why
    Many Modified BP Attributions Fail", ICML 2020.
    """

    higher_is_better = False
    needs = {
        "maps": "maps",
        "images": "images",
        "classes": "classes",
        "method": "method_for_classes",
        "class_count": "class_count",
    }

    def update(
        self,
        sample_ids: Tensor | Sequence[int],
        maps: Tensor,
        images: Tensor,
        classes: Tensor,
        method: Callable[[Tensor, Tensor | None], Tensor],
        class_count: int,
    ) -> None:
        """Explain ``images`` for a random other class each and compare with ``maps``."""
        ids = torch.as_tensor(sample_ids).reshape(-1).tolist()
        other = other_classes(ids, classes, class_count)
        other_maps = torch.as_tensor(method(images, other)).to(maps.device)
        self._store(sample_ids, 100 * spearman(maps, other_maps).float())

    def method_calls(self) -> int:
        return 1  # the map for the other class
