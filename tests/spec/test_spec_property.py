"""Random specs across every field: each one is refused with a SpecError naming a field, or builds
in both frameworks with the plan's counts and ports by the parity contract."""

import collections
import dataclasses
import math

import numpy as np
import pytest
import torch  # noqa: F401  (before Keras, see conftest)

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import parity  # noqa: E402
import resnet_spec as rs  # noqa: E402
import resnet_torch  # noqa: E402
from conftest import free_keras_memory  # noqa: E402
from parity.core.testing import randomize_torch  # noqa: E402

FIELDS = {f.name for f in dataclasses.fields(rs.ResNetSpec)}


def mostly(valid, wrong):
    """`valid` 19 times in 20, else `wrong`: random specs that often build, and sometimes break
    one field (or a combination) on purpose."""
    return st.integers(0, 19).flatmap(lambda i: wrong if i == 13 else valid)  # 13: no boundary hypothesis favours


@st.composite
def spec_fields(draw):
    """The fields of a ResNetSpec: every field drawn, mostly within what its block kind allows."""
    stages = draw(st.integers(1, 4))
    per_stage = lambda values: st.lists(values, min_size=stages, max_size=stages).map(tuple)  # noqa: E731
    block = draw(st.sampled_from(rs.BLOCKS))
    kind = rs.BLOCK_KINDS[block]
    bottleneck, split = kind.convs == 3, kind.split_attention
    avd = draw(mostly(st.booleans() if split else st.just(False), st.just(not split)))
    return dict(
        block=block,
        layers=draw(mostly(per_stage(st.integers(1, 2)), per_stage(st.integers(0, 2)))),
        widths=draw(mostly(per_stage(st.integers(1, 24)), st.just((8,) * (stages + 1)))),
        stem=draw(st.sampled_from(rs.STEMS)),
        stem_width=draw(st.integers(1, 16)),
        groups=draw(mostly(st.sampled_from((1, 2, 4)) if bottleneck else st.just(1), st.integers(2, 4))),
        width_per_group=draw(mostly(st.sampled_from((16, 32, 64, 128)) if bottleneck else st.just(64),
                                    st.sampled_from((1, 4, 16)))),
        radix=draw(mostly(st.sampled_from((1, 2, 4)) if split else st.just(0), st.sampled_from((0, 2)))),
        avd=avd,
        avd_first=draw(mostly(st.booleans() if avd else st.just(False), st.just(True))),
        shortcut=draw(mostly(st.just("projection") if kind.preact else st.sampled_from(rs.SHORTCUTS),
                             st.sampled_from(rs.SHORTCUTS))),
        in_channels=draw(st.integers(1, 4)),
        input_size=draw(mostly(st.integers(5, 40), st.integers(0, 4))),
        num_classes=draw(mostly(st.integers(1, 12), st.just(0))),
        include_top=draw(st.booleans()),
        pooling=draw(mostly(st.sampled_from(("avg", "max")), st.sampled_from(rs.POOLINGS))),
        drop_rate=draw(mostly(st.sampled_from((0.0, 0.5)), st.just(1.0))),
        head=draw(mostly(st.sampled_from(((), (("dropout", 0.5),), (("linear", 6), ("relu",), ("dropout", 0.2)))),
                         st.sampled_from(((("linear", 0),), (("pool", 2),))))),
        output_stride=draw(mostly(st.just(None), st.sampled_from((1, 2, 4, 8, 16, 32, 12)))),
        zero_init_residual=draw(st.booleans()),
        features_only=draw(st.booleans()),
    )


def test_random_specs_are_refused_by_field_or_agree_in_both_frameworks():
    outcomes = collections.Counter()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spec_fields(), st.integers(0, 2**16))
    def check(fields, seed):
        try:
            spec = rs.ResNetSpec(name="random", family="random", **fields)
            plan = rs.plan(spec)
        except rs.SpecError as err:
            assert err.field in FIELDS and str(err).startswith(f"{err.field}: ")
            outcomes["refused"] += 1
            return
        torch_model = randomize_torch(resnet_torch.ResNet(spec), seed).eval()
        keras_model = parity.torch_to_keras(torch_model)
        counts = rs.count_parameters(plan)
        assert sum(p.numel() for p in torch_model.parameters()) == counts.params
        assert sum(math.prod(v.shape) for v in keras_model.trainable_weights) == counts.params
        assert sum(math.prod(v.shape) for v in keras_model.non_trainable_weights) == counts.buffers
        size = (spec.input_size, spec.input_size + 1)  # non-square, one side odd
        x = np.random.default_rng(seed).standard_normal((2, spec.in_channels, *size)).astype(np.float32)
        report = parity.compare(torch_model, keras_model, x)
        assert report.ok, f"{spec}\n{report.table()}"
        outcomes["built"] += 1
        free_keras_memory()

    check()
    # Both outcomes really happen: a generator that only made invalid specs would prove nothing.
    assert outcomes["built"] >= 15 and outcomes["refused"] >= 15, outcomes


@pytest.mark.parametrize(
    "fields, field",
    [
        # The case random specs found: int(4 * 4 / 64) = 0 channels in stage 2's 3x3 conv.
        (dict(block="bottleneck", layers=(2, 2, 2), widths=(16, 4, 16), width_per_group=4), "widths"),
        (dict(block="splat_bottleneck", layers=(1,), widths=(16,), radix=3), "radix"),
        (dict(block="splat_bottleneck", layers=(1,), widths=(16,), radix=1, groups=3), "groups"),  # 32 % 3
    ],
)
def test_specs_no_builder_can_realise_name_the_field(fields, field):
    with pytest.raises(rs.SpecError) as err:
        rs.ResNetSpec(name="x", family="x", **fields)
    assert err.value.field == field

