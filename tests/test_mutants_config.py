"""Config at its edges (issue #25): k at and one past n_samples; model roles missing their `id` or `path`."""

from __future__ import annotations

import copy

import pytest

from medbridge import MedbridgeError
from medbridge.config import validate_config


def _with(cfg: dict, **evaluate) -> dict:
    out = copy.deepcopy(cfg)
    out["evaluate"].update(evaluate)
    return out


def test_k_may_equal_n_samples_but_not_exceed_it(tiny_cfg):
    n = tiny_cfg["evaluate"]["n_samples"]
    assert validate_config(_with(tiny_cfg, k=[1, n]))["evaluate"]["k"] == [1, n]
    with pytest.raises(MedbridgeError, match=f"k={n + 1}"):
        validate_config(_with(tiny_cfg, k=[1, n + 1]))
    with pytest.raises(MedbridgeError, match="Pass@k needs n >= k"):
        validate_config(_with(tiny_cfg, k=[n + 1, 1]))  # the largest k counts, wherever it stands


@pytest.mark.parametrize(
    "spec,expect",
    [({"source": "hub"}, "source hub needs an `id`"),
     ({"source": "hub", "path": "models/x"}, "source hub needs an `id`"),  # a path does not stand in for an id
     ({"source": "local"}, "source local needs a `path`"),
     ({"source": "local", "id": "org/x"}, "source local needs a `path`")],
)  # fmt: skip
def test_roles_missing_id_or_path_are_rejected(tiny_cfg, spec, expect):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["extra"] = spec
    with pytest.raises(MedbridgeError, match=expect) as err:
        validate_config(cfg)
    assert "models.extra" in str(err.value)


def test_roles_with_id_or_path_are_accepted(tiny_cfg):
    cfg = copy.deepcopy(tiny_cfg)
    cfg["models"]["hubbed"] = {"source": "hub", "id": "org/x"}
    cfg["models"]["local"] = {"source": "local", "path": "models/x"}
    assert set(validate_config(cfg)["models"]) >= {"hubbed", "local"}
