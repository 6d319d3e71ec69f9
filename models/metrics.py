"""REACT challenge metrics in NaN-safe numpy (as the REACT 2025 organisers' evaluation code defines them).

Inputs: for each evaluated speaker k, `preds[k]` is a (K, T, D) array of K sampled reactions, `gts[k]`
a list of appropriate ground-truth (T', D) reactions and `speakers[k]` the speaker's own (T_s, D)
sequence. A `Part` is (columns, FRDist weight, binary), one per channel group
(`datasets.specs.METRIC_GROUPS`; for REACT: AU 1/15 binary, VA 1, expressions 1/8).

- FRCorr (up) = mean_k sum_i max_g CCC(g, P_ki), CCC averaged over dimensions.
- FRDist (down) = mean_k sum_i min_g sum_parts w * DTW(P_ki[:, part], g[:, part]).
- FRDiv (up) = mean_k of the mean squared difference per element over ordered pairs of samples.
- FRVar (up) = mean over k, i, d of the unbiased variance over time.
- FRDvs (up) = mean squared difference per element between the same sample number of two speakers
  (2023/24 only; the 2025 code leaves it unimplemented).
- FRSyn (down) = mean over k, i of |lag| maximising the time-lagged cross-correlation with the speaker.
all_metrics() scores binarize()d predictions, GTs and speakers (REACT's data_clamp / --binarize, AU >= 0.5).

Deliberate differences from the official code:
- FRSyn: the official TLCC takes np.corrcoef over all 25 channels, so a constant channel (an AU that
  never fires) makes every lag NaN and the score degenerates to 49. Here each lag averages Pearson
  only over channels where both shifted series vary; it scores every sample, not only the first;
  the window is round(seconds * fps) - 1 lags at the data's fps, not a hard-coded 25 fps. A lag with
  no usable channel scores r = 0; a sample with no usable lag at all scores the window size (the
  official degenerate value); ties go to the smallest |lag|.
- "Constant" means exactly constant (max == min), so a constant channel gives CCC and Pearson exactly
  0, and identical samples give FRDiv and FRDvs exactly 0, free of float-mean round-off.
- GTs of a different length: FRCorr compares the common prefix (2025 re-times GTs with a learned
  VAE instead); DTW needs no alignment. FRDvs likewise uses the common prefix of each speaker pair.
- Averages run per speaker first (FRVar) and per speaker pair (FRDvs), so speakers of different
  lengths are weighted equally; with equal shapes this is the official value.
- Degenerate sizes give 0.0 instead of NaN: FRDiv with K == 1, FRVar with T == 1, FRDvs with N == 1.

FRDist batches the DTW over a speaker's K samples: a (Tg, T, K) float64 cost array per part, about
260 MB at T = 1800, K = 10.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

Part = tuple[slice, float, bool]  # columns of the metric vector, FRDist weight, binary


def _ccc_many(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """CCC of y (T, D) against each of p (..., T, D), averaged over D; one call scores all samples."""
    my, mp = y.mean(-2), p.mean(-2)
    yc, pc = y - my, p - mp[..., None, :]
    vy, vp = (yc * yc).mean(-2), (pc * pc).mean(-2)  # population variance, as the official code
    sy, sp = np.sqrt(vy), np.sqrt(vp)
    den = sy * sp
    # rho = 0 on a constant channel (the official nan_to_num), so its CCC is 0 rather than NaN. Tested
    # with ptp: the mean of equal floats need not equal them, leaving a noisy std of ~1e-17.
    varies = (np.ptp(y, axis=-2) > 0) & (np.ptp(p, axis=-2) > 0) & (den > 0)
    rho = np.divide((yc * pc).mean(-2), den, out=np.zeros_like(den), where=varies)
    return (2 * rho * sy * sp / (vy + vp + (my - mp) ** 2 + 1e-8)).mean(-1)


def ccc(y: np.ndarray, p: np.ndarray) -> float:
    """Concordance correlation of two (T, D) sequences, mean over dimensions; 0 on constant ones."""
    return float(_ccc_many(np.asarray(y, float), np.asarray(p, float)))


def _dtw_batch(cost: np.ndarray) -> np.ndarray:
    """DTW for each batch entry of squared ground costs cost (Ta, Tb, B), as tslearn.metrics.dtw.

    Hand-written because tslearn pulls numba, llvmlite and scikit-learn for what is ~20 lines here.
    Cells (i, j) with equal i + j = s form anti-diagonal s and depend only on diagonals s-1 and s-2,
    so each diagonal is one vector step over the batch: O(Ta + Tb) Python iterations in all. The batch
    axis is last so that gathering a diagonal reads contiguous rows (twice as fast as batch first).
    Diagonal buffers are indexed by the 1-based row i; row 0 and off-grid cells hold inf.
    """
    ta, tb, n = cost.shape
    flat = cost.reshape(ta * tb, n)  # cell (i, j), 1-based, at row (i-1)*tb + j-1
    step = max(tb - 1, 1)  # along an anti-diagonal; tb == 1 has one cell each
    prev2 = np.full((ta + 1, n), np.inf)  # diagonal s-2
    prev2[0] = 0.0  # cell (0, 0)
    prev1 = np.full((ta + 1, n), np.inf)  # diagonal s-1
    for s in range(2, ta + tb + 1):
        lo, hi = max(1, s - tb), min(ta, s - 1)
        start = (lo - 1) * tb + s - lo - 1
        # predecessors of (i, s-i): (i-1, s-i) and (i, s-i-1) on s-1, (i-1, s-i-1) on s-2
        best = np.minimum(np.minimum(prev1[lo - 1 : hi], prev1[lo : hi + 1]), prev2[lo - 1 : hi])
        cur = prev2  # recycle the buffer; its off-range entries must read as inf later
        cur.fill(np.inf)
        np.add(flat[start : start + (hi - lo) * step + 1 : step], best, out=cur[lo : hi + 1])
        prev2, prev1 = prev1, cur
    return np.sqrt(prev1[ta])


def dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Multivariate DTW of (Ta, D) and (Tb, D): sqrt of the least summed squared Euclidean distance
    along a warping path (tslearn.metrics.dtw)."""
    return float(_dtw_batch(cdist(np.asarray(a, float), np.asarray(b, float), "sqeuclidean")[..., None])[0])


def _fr_dist_batch(p: np.ndarray, g: np.ndarray, parts: list[Part]) -> np.ndarray:
    """fr_dist_pair of each sample of p (K, T, D) against g; one DTW pass per part serves all K.

    The cost is laid out (Tg, T, K), g against the samples: DTW is symmetric in its two sequences.
    """
    k, t = p.shape[:2]
    frames = p.transpose(1, 0, 2)  # (T, K, D): frame-major, so cdist gives (Tg, T * K)
    total = np.zeros(k)
    for sl, w, _ in parts:
        cost = cdist(g[:, sl], frames[..., sl].reshape(t * k, -1), "sqeuclidean").reshape(len(g), t, k)
        total += w * _dtw_batch(cost)
    return total


def fr_dist_pair(p: np.ndarray, g: np.ndarray, parts: list[Part]) -> float:
    """Weighted sum over channel parts of the DTW of prediction p and GT g, both (T, D)."""
    return float(_fr_dist_batch(np.asarray(p, float)[None], np.asarray(g, float), parts)[0])


def frcorr(preds: list[np.ndarray], gts: list[list[np.ndarray]]) -> float:
    """mean_k sum_i max_g CCC(g, P_ki), over the common prefix when a GT's length differs."""
    scores = []
    for pk, gk in zip(preds, gts):
        per_gt = []
        for g in gk:
            n = min(pk.shape[1], g.shape[0])
            per_gt.append(_ccc_many(g[:n], pk[:, :n]))
        scores.append(np.max(per_gt, axis=0).sum())
    return float(np.mean(scores))


def frdist(preds: list[np.ndarray], gts: list[list[np.ndarray]], parts: list[Part]) -> float:
    """mean_k sum_i min_g of the weighted per-part DTW distance between P_ki and g."""
    scores = [np.min([_fr_dist_batch(pk, g, parts) for g in gk], axis=0).sum() for pk, gk in zip(preds, gts)]
    return float(np.mean(scores))


def _centred(x: np.ndarray) -> np.ndarray:
    """x minus its mean over axis 0, exactly 0 where all entries are equal (x[0] is taken out first,
    since the float mean of equal values can differ from them): identical samples must score 0."""
    shifted = x - x[0]
    return shifted - shifted.mean(0)


def frdiv(preds: list[np.ndarray]) -> float:
    """Within-speaker diversity: mean squared element difference over ordered pairs of samples.

    sum_{i != j} ||P_i - P_j||^2 = 2K sum_i ||P_i - mean||^2, which avoids the K^2 pair loop.
    """
    scores = []
    for pk in preds:
        k = pk.shape[0]
        dev = _centred(pk)
        scores.append(0.0 if k < 2 else 2 * (dev * dev).sum() / ((k - 1) * dev[0].size))
    return float(np.mean(scores))


def frvar(preds: list[np.ndarray]) -> float:
    """Mean over speakers, samples and channels of the unbiased variance over time (0 when T == 1)."""
    return float(np.mean([0.0 if pk.shape[1] < 2 else pk.var(axis=1, ddof=1).mean() for pk in preds]))


def _frdvs_pairwise(preds: list[np.ndarray]) -> float:
    """FRDvs over explicit speaker pairs, each compared on its common prefix."""
    n = len(preds)
    if n < 2:
        return 0.0
    total = 0.0
    for k in range(n):
        for m in range(k + 1, n):
            t = min(preds[k].shape[1], preds[m].shape[1])
            diff = preds[k][:, :t] - preds[m][:, :t]
            total += (diff * diff).mean()
    return float(total / (n * (n - 1) / 2))


def frdvs(preds: list[np.ndarray]) -> float:
    """Across-speaker diversity: mean squared element difference of sample i between speakers k != l.

    Equal shapes use sum_{k != l} ||P_k - P_l||^2 = 2N sum_k ||P_k - mean||^2 (no N^2 pair loop).
    """
    n = len(preds)
    if n < 2:
        return 0.0
    if len({pk.shape for pk in preds}) > 1:
        return _frdvs_pairwise(preds)
    dev = _centred(np.stack(preds))
    return float(2 * (dev * dev).sum() / ((n - 1) * dev[0].size))


def _sync_offsets(pk: np.ndarray, s: np.ndarray, max_lag: int) -> np.ndarray:
    """|lag| maximising the NaN-safe mean Pearson of each sample of pk (K, T, D) with speaker s."""
    n = min(pk.shape[1], s.shape[0])
    lags = [0] + [sign * m for m in range(1, min(max_lag, n - 2) + 1) for sign in (1, -1)]  # by |lag|
    r = np.zeros((len(lags), pk.shape[0]))
    usable_any = np.zeros(pk.shape[0], bool)
    for row, lag in enumerate(lags):
        # positive lag: the prediction lags the speaker, P[lag:] against S[:n - lag]
        x = pk[:, max(lag, 0) : n + min(lag, 0)]
        y = s[max(-lag, 0) : n - max(lag, 0)]
        varies = (np.ptp(x, axis=1) > 0) & (np.ptp(y, axis=0) > 0)  # (K, D); constant -> no Pearson
        xc, yc = x - x.mean(1, keepdims=True), y - y.mean(0)
        den = np.sqrt((xc * xc).sum(1) * (yc * yc).sum(0))
        pearson = np.divide((xc * yc).sum(1), den, out=np.zeros_like(den), where=varies & (den > 0))
        count = varies.sum(1)
        r[row] = np.divide(pearson.sum(1), count, out=np.zeros(len(count)), where=count > 0)
        usable_any |= count > 0
    # argmax picks the first maximum, i.e. the smallest |lag| on ties; no usable lag is the worst case
    return np.where(usable_any, np.abs(np.asarray(lags)[r.argmax(0)]), max_lag)


def frsyn(preds: list[np.ndarray], speakers: list[np.ndarray], fps: float, seconds: float = 2.0) -> float:
    """Mean over speakers and samples of the TLCC offset in frames (NaN-safe; see module docstring)."""
    max_lag = max(int(round(seconds * fps)) - 1, 0)
    offsets = [_sync_offsets(pk, s, max_lag) for pk, s in zip(preds, speakers)]
    return float(np.mean(np.concatenate(offsets)))


def binarize(x: np.ndarray, parts: list[Part]) -> np.ndarray:
    """Copy of x (..., D) with the binary parts thresholded at 0.5 to 0/1, as REACT's data_clamp."""
    out = np.array(x, dtype=float)
    for sl, _, binary in parts:
        if binary:
            out[..., sl] = out[..., sl] >= 0.5
    return out


def all_metrics(
    preds: list[np.ndarray], gts: list[list[np.ndarray]], speakers: list[np.ndarray], parts: list[Part], fps: float
) -> dict[str, float]:
    """All six metrics on binarized predictions, GTs and speakers; finite inputs are required."""
    arrays = [*preds, *speakers, *(g for gk in gts for g in gk)]
    if not all(np.isfinite(a).all() for a in arrays):
        raise ValueError("metrics need finite predictions, GTs and speakers")
    preds = [binarize(pk, parts) for pk in preds]
    gts = [[binarize(g, parts) for g in gk] for gk in gts]
    speakers = [binarize(s, parts) for s in speakers]
    return {
        "FRCorr": frcorr(preds, gts),
        "FRDist": frdist(preds, gts, parts),
        "FRDiv": frdiv(preds),
        "FRVar": frvar(preds),
        "FRDvs": frdvs(preds),
        "FRSyn": frsyn(preds, speakers, fps),
    }
