"""REACT metrics against values worked out by hand on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dyadic.models.metrics import (
    _frdvs_pairwise,
    all_metrics,
    binarize,
    ccc,
    dtw,
    fr_dist_pair,
    frcorr,
    frdist,
    frdiv,
    frdvs,
    frsyn,
    frvar,
)

# REACT's 25-d layout with datasets.specs.METRIC_GROUPS["react"]: AU (binary), VA, expressions.
REACT_PARTS = [(slice(0, 15), 1 / 15, True), (slice(15, 17), 1.0, False), (slice(17, 25), 1 / 8, False)]


def col(*values: float) -> np.ndarray:
    """A (T, 1) sequence."""
    return np.asarray(values, float)[:, None]


def dtw_reference(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook O(Ta * Tb) double loop."""
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = float(((a[i - 1] - b[j - 1]) ** 2).sum())
            acc[i, j] = cost + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return math.sqrt(acc[-1, -1])


# --- CCC -----------------------------------------------------------------------------------------


def test_ccc_identical_and_negated():
    y = np.random.default_rng(0).normal(size=(50, 3))
    assert ccc(y, y) == pytest.approx(1.0, abs=1e-6)
    assert ccc(y - y.mean(0), -(y - y.mean(0))) == pytest.approx(-1.0, abs=1e-6)


def test_ccc_worked_example():
    # y = 1, 2, 3 and p = 2, 4, 6: means 2 and 4, population variances 2/3 and 8/3, covariance 4/3,
    # rho = 1, so CCC = 2 * 4/3 / (2/3 + 8/3 + (2 - 4)^2) = (8/3) / (22/3) = 4/11.
    assert ccc(col(1, 2, 3), col(2, 4, 6)) == pytest.approx(4 / 11, abs=1e-8)
    # A second, constant channel has CCC 0, and the mean over channels halves it.
    y = np.hstack([col(1, 2, 3), col(5, 5, 5)])
    p = np.hstack([col(2, 4, 6), col(1, 2, 3)])
    assert ccc(y, p) == pytest.approx(2 / 11, abs=1e-8)


def test_ccc_constant_channel_is_zero_not_nan():
    assert ccc(col(1, 1, 1), col(1, 2, 3)) == 0.0
    assert ccc(col(0.1, 0.1, 0.1), col(0.1, 0.1, 0.1)) == 0.0  # equal constants: 0 / 1e-8


# --- DTW -----------------------------------------------------------------------------------------


def test_dtw_worked_example():
    # a = 0, 1, 2 against b = 0, 2. Squared costs (rows a, columns b): [[0, 4], [1, 1], [4, 0]].
    # Accumulated: row 1: 0, 4; row 2: 1, 1 + min(4, 1, 0) = 1; row 3: 5, 0 + min(1, 5, 1) = 1.
    # DTW = sqrt(1) = 1 (path (0,0), (1,1), (2,1) or (0,0), (1,0), (2,1)).
    assert dtw(col(0, 1, 2), col(0, 2)) == pytest.approx(1.0)
    # One frame against two: both must match it, sqrt(0 + 3^2 + 4^2) = 5.
    assert dtw(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[0.0, 0.0]])) == pytest.approx(5.0)


@pytest.mark.parametrize(
    "ta,tb,d", [(1, 1, 1), (1, 6, 3), (6, 1, 1), (2, 2, 1), (5, 8, 1), (8, 5, 3), (13, 13, 3), (20, 7, 3)]
)
def test_dtw_matches_brute_force(ta, tb, d):
    rng = np.random.default_rng(ta * 100 + tb * 10 + d)
    a, b = rng.normal(size=(ta, d)), rng.normal(size=(tb, d))
    assert dtw(a, b) == pytest.approx(dtw_reference(a, b), rel=1e-12)
    assert dtw(b, a) == pytest.approx(dtw(a, b), rel=1e-12)


def test_dtw_of_identical_sequences_is_exactly_zero():
    a = np.random.default_rng(1).normal(size=(30, 4))
    assert dtw(a, a) == 0.0


# --- FRCorr and FRDist ---------------------------------------------------------------------------


def test_frcorr_hand_value():
    g1, g2 = col(1, 2, 3), col(3, 2, 1)
    # Speaker 0: sample 0 = 2, 4, 6 scores 4/11 against g1 (and -4/11 against g2); sample 1 equals g2,
    # so 1 (up to the 1e-8 term). Speaker 1: a constant sample scores 0 against anything.
    preds = [np.stack([col(2, 4, 6), g2]), np.stack([col(7, 7, 7)])]
    gts = [[g1, g2], [g1]]
    assert frcorr(preds, gts) == pytest.approx((4 / 11 + 1) / 2, abs=1e-6)


def test_frcorr_uses_common_prefix():
    p = col(1, 2, 3)
    assert frcorr([p[None]], [[col(1, 2, 3, 9, -4)]]) == pytest.approx(1.0, abs=1e-6)


def test_fr_dist_pair_and_frdist_hand_value():
    parts = [(slice(0, 1), 0.5, False), (slice(1, 2), 2.0, False)]
    p = np.array([[0.0, 0.0], [3.0, 1.0]])
    g_near = np.array([[0.0, 0.0], [3.0, 0.0]])
    # Channel 0 identical: 0. Channel 1 is 0, 1 against 0, 0: costs [[0, 0], [1, 1]], accumulated
    # row 1: 0, 0; row 2: 1, 1 + min(0, 1, 0) = 1, so DTW 1 and D = 0.5 * 0 + 2 * 1 = 2.
    assert fr_dist_pair(p, g_near, parts) == pytest.approx(2.0)
    g_far = g_near + 10.0
    # Sample 1 equals g_near: 0. Min over GTs, summed over the two samples: 2 + 0.
    preds = [np.stack([p, g_near])]
    assert frdist(preds, [[g_far, g_near]], parts) == pytest.approx(2.0)
    # GTs of another length are fine: DTW aligns them (g_near with its last frame repeated).
    assert frdist(preds, [[np.vstack([g_near, g_near[-1:]])]], parts) == pytest.approx(2.0)


def test_frdist_batched_over_samples_matches_brute_force():
    rng = np.random.default_rng(11)
    parts = [(slice(0, 3), 0.25, False), (slice(3, 4), 1.5, False)]
    preds = [rng.normal(size=(3, 6, 4)), rng.normal(size=(2, 4, 4))]
    gts = [[rng.normal(size=(5, 4)), rng.normal(size=(8, 4))], [rng.normal(size=(4, 4))]]

    def pair(p, g):
        return sum(w * dtw_reference(p[:, sl], g[:, sl]) for sl, w, _ in parts)

    expected = np.mean([sum(min(pair(p, g) for g in gk) for p in pk) for pk, gk in zip(preds, gts)])
    assert frdist(preds, gts, parts) == pytest.approx(expected, rel=1e-12)
    assert fr_dist_pair(preds[0][1], gts[0][1], parts) == pytest.approx(pair(preds[0][1], gts[0][1]), rel=1e-12)


# --- FRDiv, FRVar, FRDvs -------------------------------------------------------------------------


def test_frdiv_hand_values():
    same = np.stack([col(0, 1), col(0, 1), col(0, 1)])
    assert frdiv([same]) == 0.0
    # Two samples 0, 1 and 1, 3: ||diff||^2 = 1 + 4 = 5 per ordered pair, 10 in all,
    # over K (K - 1) T D = 2 * 1 * 2 * 1 = 4: 2.5. The second speaker (K = 1) counts 0.
    two = np.stack([col(0, 1), col(1, 3)])
    assert frdiv([two]) == pytest.approx(2.5)
    assert frdiv([two, col(5, 6)[None]]) == pytest.approx(1.25)


def test_frvar_hand_value():
    # Channel 1, 2, 3, 6: mean 3, squared deviations 4 + 1 + 0 + 9 = 14, unbiased 14/3.
    # Channel 0, 0, 0, 4: mean 1, squared deviations 1 + 1 + 1 + 9 = 12, unbiased 4. Mean 13/3.
    p = np.hstack([col(1, 2, 3, 6), col(0, 0, 0, 4)])[None]
    assert frvar([p]) == pytest.approx(13 / 3)
    # A second speaker that never moves halves it; a single frame gives 0, not NaN.
    assert frvar([p, np.zeros((1, 4, 2))]) == pytest.approx(13 / 6)
    assert frvar([np.ones((3, 1, 2))]) == 0.0


def test_frdvs_hand_values():
    # N = 2, K = 2, T = 2, D = 1. Sample 0: 0, 0 against 1, 2 -> ||diff||^2 = 5; sample 1 identical.
    # Ordered pairs double it: 10, over N (N - 1) K D T = 2 * 1 * 2 * 1 * 2 = 8: 1.25.
    a = np.stack([col(0, 0), col(1, 1)])
    b = np.stack([col(1, 2), col(1, 1)])
    assert frdvs([a, b]) == pytest.approx(1.25)
    # N = 3, one frame: 0, 1, 3 -> unordered squared differences 1 + 9 + 4 = 14, ordered 28, over 3 * 2: 14/3.
    assert frdvs([col(0)[None], col(1)[None], col(3)[None]]) == pytest.approx(14 / 3)
    assert frdvs([a]) == 0.0


def test_frdvs_unequal_lengths_use_common_prefix():
    # 0, 0, 5 against 1, 2: the prefix of 2 frames gives (1 + 4) / 2 = 2.5 per element.
    assert frdvs([col(0, 0, 5)[None], col(1, 2)[None]]) == pytest.approx(2.5)


def test_frdvs_fast_path_equals_pair_loop():
    preds = list(np.random.default_rng(2).normal(size=(5, 3, 7, 2)))
    assert frdvs(preds) == pytest.approx(_frdvs_pairwise(preds), rel=1e-12)


def test_uniform_noise_values():
    rng = np.random.default_rng(3)
    preds = list(rng.uniform(size=(2, 10, 2000, 25)))
    assert frdiv(preds) == pytest.approx(1 / 6, abs=0.01)
    assert frvar(preds) == pytest.approx(1 / 12, abs=0.01)
    assert frdvs(preds) == pytest.approx(1 / 6, abs=0.01)


# --- FRSyn ---------------------------------------------------------------------------------------


def delayed(s: np.ndarray, frames: int, fill: np.ndarray) -> np.ndarray:
    """s shifted later by `frames`; the first frames come from `fill`."""
    return np.vstack([fill[:frames], s[: len(s) - frames]])


def test_frsyn_finds_a_three_frame_delay():
    rng = np.random.default_rng(4)
    s = rng.normal(size=(300, 3))
    p_late = delayed(s, 3, rng.normal(size=(3, 3)))
    p_early = np.vstack([s[3:], rng.normal(size=(3, 3))])  # the prediction leads by 3 frames
    assert frsyn([np.stack([p_late, p_early])], [s], fps=25) == 3.0
    # A channel that never fires (an AU) would make the official TLCC NaN; here it is skipped.
    p_late[:, 1] = 0.0
    assert frsyn([p_late[None]], [s], fps=25) == 3.0


def test_frsyn_ties_go_to_the_smallest_lag():
    # An exactly periodic speaker (period 10): lags 3, -7, 13, ... all correlate exactly 1.
    s = np.tile(np.random.default_rng(5).normal(size=(10, 2)), (20, 1))
    assert frsyn([np.roll(s, 3, axis=0)[None]], [s], fps=25) == 3.0
    assert frsyn([s[None]], [s], fps=25) == 0.0


def test_frsyn_degenerate_inputs_give_the_worst_offset_not_nan():
    s = np.random.default_rng(6).normal(size=(100, 2))
    constant = np.full((2, 100, 2), 0.5)
    assert frsyn([constant], [s], fps=25) == 49.0  # round(2 * 25) - 1, as the official window
    assert frsyn([constant], [s], fps=30) == 59.0
    assert frsyn([s[None]], [np.zeros((100, 2))], fps=25) == 49.0


def test_frsyn_short_sequences():
    s = np.random.default_rng(7).normal(size=(6, 2))
    assert frsyn([delayed(s, 2, s)[None]], [s], fps=25) == 2.0
    assert math.isfinite(frsyn([s[:1][None]], [s[:1]], fps=25))


# --- binarize and all_metrics --------------------------------------------------------------------


def test_binarize_thresholds_binary_parts_only():
    parts = [(slice(0, 3), 1.0, True), (slice(3, 4), 1.0, False)]
    x = np.array([[0.2, 0.5, 0.7, 0.3]])
    out = binarize(x, parts)
    np.testing.assert_array_equal(out, [[0.0, 1.0, 1.0, 0.3]])
    assert x[0, 1] == 0.5  # a copy


def react_like(rng: np.random.Generator, t: int) -> np.ndarray:
    x = rng.uniform(size=(t, 25))
    x[:, 15:17] = rng.uniform(-1, 1, size=(t, 2))
    return x


def test_all_metrics_gt_as_prediction():
    rng = np.random.default_rng(8)
    gts = [[react_like(rng, 40), react_like(rng, 40)], [react_like(rng, 35)]]
    speakers = [react_like(rng, 40), react_like(rng, 35)]
    preds = [np.stack([gk[0]] * 3) for gk in gts]
    out = all_metrics(preds, gts, speakers, REACT_PARTS, fps=25)
    assert set(out) == {"FRCorr", "FRDist", "FRDiv", "FRVar", "FRDvs", "FRSyn"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert out["FRDiv"] == 0.0
    assert out["FRDist"] == 0.0
    assert out["FRCorr"] == pytest.approx(3.0, abs=1e-6)  # 3 samples, each CCC 1 on every channel


def test_all_metrics_binarizes_predictions():
    rng = np.random.default_rng(9)
    g = react_like(rng, 30)
    g[:, :15] = g[:, :15] >= 0.5
    p = g.copy()
    p[:, :15] = np.where(g[:, :15] > 0, 0.9, 0.1)  # wrong as raw values, right once thresholded
    out = all_metrics([p[None]], [[g]], [g], REACT_PARTS, fps=25)
    assert out["FRDist"] == 0.0
    assert fr_dist_pair(p, g, REACT_PARTS) > 0.0


def test_all_metrics_rejects_non_finite_input():
    g = react_like(np.random.default_rng(10), 10)
    p = g.copy()
    p[3, 16] = np.nan
    with pytest.raises(ValueError):
        all_metrics([p[None]], [[g]], [g], REACT_PARTS, fps=25)
