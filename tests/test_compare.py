"""The comparison statistics (rstack.analysis.compare) against hand-computed values and scipy."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from rstack.analysis import compare as cmp
from rstack.analysis.compare import compare, holm

TREAT = [1.2, 1.4, 1.1]
BASE = [1.0, 1.1, 0.9]


def test_paired_t_interval_and_p_by_hand():
    # per-seed differences d = 0.2, 0.3, 0.2: mean 7/30, sd = sqrt(1/300), se = 1/30
    c = compare(TREAT, BASE, direction="maximize", paired=True)
    assert c.diff == pytest.approx(7 / 30)
    half = 4.302652729911275 * (1 / 30)  # t(0.975, df=2)
    assert (c.ci_low, c.ci_high) == pytest.approx((7 / 30 - half, 7 / 30 + half))
    # t = 7 on 2 df: the two-sided p has the closed form 1 - t / sqrt(t^2 + 2)
    assert c.p == pytest.approx(1 - 7 / math.sqrt(51))
    assert c.paired and c.n_treatment == 3 and c.n_baseline == 3
    assert c.rel_diff == pytest.approx((7 / 30) / 1.0)


def test_paired_matches_scipy_ttest_rel():
    t, b = [0.91, 0.88, 0.93, 0.90, 0.87], [0.89, 0.87, 0.90, 0.90, 0.85]
    c = compare(t, b, direction="maximize", paired=True)
    ref = sps.ttest_rel(t, b)
    ci = ref.confidence_interval(0.95)
    assert c.p == pytest.approx(ref.pvalue)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))


def test_welch_satterthwaite_by_hand_and_against_scipy():
    c = compare(TREAT, BASE, direction="maximize", paired=False)
    vt, vb = 0.07 / 3 / 3, 0.02 / 2 / 3  # sample variance / n
    df = (vt + vb) ** 2 / (vt ** 2 / 2 + vb ** 2 / 2)
    assert df == pytest.approx(3.448275862, rel=1e-9)
    half = sps.t.ppf(0.975, df) * math.sqrt(vt + vb)
    assert (c.ci_low, c.ci_high) == pytest.approx((7 / 30 - half, 7 / 30 + half))
    ref = sps.ttest_ind(TREAT, BASE, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.p == pytest.approx(ref.pvalue)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))
    assert c.verdict == cmp.NO_DIFFERENCE  # unpaired, the interval spans 0
    # paired on the same numbers the seed-to-seed noise cancels and the difference is detected
    assert compare(TREAT, BASE, direction="maximize", paired=True).verdict == cmp.BETTER


def test_unequal_sizes_unpaired_and_paired_refused():
    c = compare([1, 2, 3, 4], [0, 1, 2], direction="maximize", paired=False)
    assert (c.n_treatment, c.n_baseline, c.n) == (4, 3, 3)
    with pytest.raises(ValueError, match="paired comparison needs one value per seed"):
        compare([1, 2, 3, 4], [0, 1, 2], direction="maximize", paired=True)


def test_bootstrap_fixed_rng_matches_scipy_and_is_deterministic():
    t, b = [0.91, 0.88, 0.93, 0.90, 0.87], [0.80, 0.87, 0.84, 0.86, 0.85]
    c1 = compare(t, b, direction="maximize", paired=False, rng_seed=7)
    c2 = compare(t, b, direction="maximize", paired=False, rng_seed=7)
    assert (c1.boot_low, c1.boot_high) == (c2.boot_low, c2.boot_high)
    ref = sps.bootstrap((np.array(t), np.array(b)),
                        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
                        n_resamples=9999, method="percentile", rng=np.random.default_rng(7))
    assert (c1.boot_low, c1.boot_high) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high))
    assert c1.boot_low < c1.diff < c1.boot_high


def test_paired_bootstrap_bounds_by_hand():
    # d = 0.2, 0.3, 0.2: a resample's mean is 0.2 with probability (2/3)^3 = 0.30 > 0.025, and
    # 0.3 with probability (1/3)^3 = 0.037 > 0.025, so the percentile bounds are exactly 0.2, 0.3
    c = compare(TREAT, BASE, direction="maximize", paired=True)
    assert (c.boot_low, c.boot_high) == pytest.approx((0.2, 0.3))


def test_minimize_metric_that_rises_is_worse():
    # the incident: train_ece rising many-fold must never be "better"
    ece_ls, ece_ce = [0.11, 0.13, 0.12], [0.005, 0.006, 0.0055]
    c = compare(ece_ls, ece_ce, direction="minimize", paired=True, metric="train_ece")
    assert c.verdict == cmp.WORSE and c.significant
    assert c.diff > 0 and c.improvement < 0 and c.improvement_high < 0
    assert c.improvement_low == pytest.approx(-c.ci_high)
    assert c.improvement_high == pytest.approx(-c.ci_low)
    better = compare(ece_ce, ece_ls, direction="minimize", paired=True)
    assert better.verdict == cmp.BETTER and better.improvement > 0


def test_no_direction_is_never_better_or_worse():
    c = compare([5.0, 5.1, 5.2], [1.0, 1.1, 1.2], direction=None, paired=True, metric="train_ece")
    assert c.verdict == cmp.NO_DIRECTION == "direction not declared"
    assert c.improvement is None and c.improvement_low is None and not c.significant
    assert c.diff == pytest.approx(4.0) and c.p is not None  # the numbers are still reported
    assert "evaluation.metrics.train_ece.direction" in " ".join(c.flags)
    with pytest.raises(ValueError, match="direction must be one of"):
        compare([1, 2, 3], [1, 2, 3], direction="lower", paired=True)


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_seeds_is_flagged_and_never_a_difference(n):
    t, b = [100.0 + i for i in range(n)], [0.0 + 2 * i for i in range(n)]
    c = compare(t, b, direction="maximize", paired=True)
    assert c.verdict == cmp.TOO_FEW_SEEDS and not c.significant
    assert any(f.startswith("n<3") for f in c.flags)
    if n == 1:
        assert c.ci_low is None and c.p is None and c.boot_low is None


def test_zero_variance_is_not_testable():
    c = compare([1.0, 1.0, 1.0], [0.5, 0.5, 0.5], direction="maximize", paired=False)
    assert c.verdict == cmp.NOT_TESTABLE and c.ci_low is None and c.p is None
    assert any("zero variance" in f for f in c.flags)


BASE10 = [10.0, 10.5, 9.5]


@pytest.mark.parametrize("deltas,min_effect,relative,verdict", [
    ([1.0, 1.1, 0.9], 0.5, False, cmp.BETTER_BY_MIN_EFFECT),  # interval 1.0 +- 0.248 > 0.5
    ([0.01, 0.02, 0.0], 0.5, False, cmp.SMALLER_THAN_MIN_EFFECT),  # 0.01 +- 0.025 in +-0.5
    ([0.3, 0.6, 0.0], 0.5, False, cmp.INCONCLUSIVE),  # 0.3 +- 0.745 straddles 0.5
    ([-1.0, -1.1, -0.9], 0.5, False, cmp.WORSE),
    ([1.0, 1.1, 0.9], 0.02, True, cmp.BETTER_BY_MIN_EFFECT),  # 2% of 10 = 0.2
    ([1.0, 1.1, 0.9], 0.20, True, cmp.SMALLER_THAN_MIN_EFFECT),  # 20% of 10 = 2.0
])
def test_min_effect_verdicts(deltas, min_effect, relative, verdict):
    t = [b + d for b, d in zip(BASE10, deltas)]
    c = compare(t, BASE10, direction="maximize", paired=True, min_effect=min_effect,
                min_effect_relative=relative)
    assert c.verdict == verdict
    if relative:
        assert c.min_effect == pytest.approx(min_effect * 10.0)
        assert c.min_effect_relative == min_effect
    # the same decision in minimize orientation, with the arms' roles mirrored
    mirrored = compare([2 * 10 - x for x in t], [2 * 10 - x for x in BASE10],
                       direction="minimize", paired=True, min_effect=min_effect,
                       min_effect_relative=relative)
    assert mirrored.verdict == verdict


def test_holm_by_hand():
    cs = [compare([0, 1, 2], [0, 1, 2], direction="maximize", paired=False) for _ in range(3)]
    cs = [c.__class__(**{**c.__dict__, "p": p, "p_adjusted": p}) for c, p in
          zip(cs, [0.01, 0.04, 0.03])]
    out = holm(cs)
    # sorted 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    assert [c.p_adjusted for c in out] == pytest.approx([0.03, 0.06, 0.06])
    assert [c.p for c in out] == [0.01, 0.04, 0.03]


def test_holm_adjustment_can_withdraw_a_verdict():
    t, b = [0.91, 0.88, 0.93, 0.90, 0.87], [0.89, 0.87, 0.90, 0.90, 0.85]
    single = compare(t, b, direction="maximize", paired=True)
    assert single.verdict == cmp.BETTER and single.p > 0.01
    family = holm([single] * 6)  # 6 x p > 0.05
    assert all(c.p_adjusted > 0.05 for c in family)
    assert all(c.verdict == cmp.NO_DIFFERENCE and not c.significant for c in family)
    assert "Holm-adjusted" in family[0].flags[-1]
    # a comparison without a p-value is not part of the family
    none = compare([1.0], [0.0], direction="maximize", paired=True)
    assert [c.p_adjusted for c in holm([none, single])] == [None, single.p]


def test_bad_values_refused():
    with pytest.raises(ValueError, match="non-finite"):
        compare([1.0, float("nan"), 2.0], [1, 2, 3], direction="maximize", paired=True)
    with pytest.raises(ValueError, match="has no values"):
        compare([], [1, 2, 3], direction="maximize", paired=False)
    with pytest.raises(ValueError, match="min_effect must be"):
        compare([1, 2, 3], [1, 2, 3], direction="maximize", paired=True, min_effect=-1)


def test_as_json_has_the_summary_keys():
    c = compare(TREAT, BASE, direction="minimize", paired=True, arm="ls", baseline_arm="ce",
                metric="val_loss", min_effect=0.01)
    out = c.as_json()
    for key in ("arm", "baseline", "metric", "direction", "diff", "ci_low", "ci_high", "boot_low",
                "boot_high", "rel_diff", "p", "p_adjusted", "paired", "n", "verdict",
                "min_effect", "improvement_low", "improvement_high"):
        assert key in out, key
    assert out["verdict"] in cmp.VERDICTS and out["n"] == 3 and out["arm"] == "ls"
    assert isinstance(out["flags"], list)
