"""Tests for facewise.eval.metrics and facewise.eval.plots (hand-computed expectations)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from facewise.eval import metrics as m

# ---- ROC / AUC ----


def test_roc_curve_with_ties_matches_hand_computation() -> None:
    # Sorted by score: 0.9 G | 0.8 G, 0.8 I (tie) | 0.7 I | 0.6 G, 0.6 I (tie); 3 genuine, 3 impostor.
    scores = [0.8, 0.6, 0.9, 0.7, 0.6, 0.8]
    labels = [True, False, True, False, True, False]
    far, tar, thr = m.roc_curve(scores, labels)
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(far, [0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tar, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    # Mann-Whitney by hand: g=.9 beats 3; g=.8 ties .8, beats .7 and .6 -> 2.5; g=.6 ties .6 -> 0.5.
    assert m.auc(scores, labels) == pytest.approx(6 / 9)
    assert m.auc(scores, labels) == pytest.approx(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def test_roc_accepts_int_labels_and_rejects_single_class() -> None:
    far, tar, _ = m.roc_curve([0.2, 0.1], [1, 0])
    np.testing.assert_allclose(far, [0, 0, 1])
    np.testing.assert_allclose(tar, [0, 1, 1])
    with pytest.raises(ValueError, match="both classes"):
        m.roc_curve([0.2, 0.1], [True, True])
    with pytest.raises(ValueError, match="boolean"):
        m.roc_curve([0.2, 0.1], [2, 0])


def test_auc_identical_distributions_with_ties_is_half() -> None:
    values = [1.0, 1.0, 2.0, 2.0]
    assert m.auc(values + values, [True] * 4 + [False] * 4) == 0.5


def test_auc_separated_is_one_and_reversed_is_zero() -> None:
    scores = [0.9, 0.8, 0.7, 0.3, 0.2]
    assert m.auc(scores, [True, True, True, False, False]) == 1.0
    assert m.auc(scores, [False, False, False, True, True]) == 0.0


# ---- EER ----


def test_eer_interpolated_crossing() -> None:
    # Genuine {.9, .5}, impostor {.8, .3, .2, .1}.  ROC points (thr: FAR, FRR): .8: (.25, .5),
    # .5: (.25, 0).  FAR-FRR goes -0.25 -> +0.25, crossing halfway: EER .25 at threshold .65.
    scores = [0.9, 0.5, 0.8, 0.3, 0.2, 0.1]
    labels = [True, True, False, False, False, False]
    rate, threshold = m.eer(scores, labels)
    assert rate == pytest.approx(0.25)
    assert threshold == pytest.approx(0.65)


def test_eer_exact_crossing_and_separable() -> None:
    # At .65: FAR = 1/4 (.65), FRR = 1/4 (.6) -> equal on an ROC point.
    scores = [0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 0.65]
    labels = [True] * 4 + [False] * 4
    assert m.eer(scores, labels) == pytest.approx((0.25, 0.65))
    rate, threshold = m.eer([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert rate == 0.0
    assert 0.2 < threshold <= 0.8


# ---- FAR operating points ----


def test_threshold_at_far_on_0_to_999() -> None:
    imp = np.arange(1000, dtype=np.float64)
    t = m.threshold_at_far(imp, 0.01)
    # k = 10 false accepts allowed; 11th largest is 989; smallest threshold with FAR <= 1% is 989 + 1 ulp.
    assert t == np.nextafter(989.0, np.inf)
    assert m.far_of_score(imp, t) == 0.01
    assert m.far_of_score(imp, 989.0) == 0.011
    assert m.threshold_at_far(imp, 0.0105) == t  # still k = 10
    assert m.threshold_at_far(imp, 0.0) == np.nextafter(999.0, np.inf)
    assert m.threshold_at_far(imp, 1.0) == -math.inf
    with pytest.raises(ValueError):
        m.threshold_at_far(imp, 1.5)


def test_tar_at_far() -> None:
    imp = np.arange(1000, dtype=np.float64)
    gen = np.array([989.0, 989.5, 990.0, 2000.0])  # 989 is rejected at FAR 1%, the others accepted
    scores = np.r_[gen, imp]
    labels = np.r_[np.ones(4, bool), np.zeros(1000, bool)]
    assert m.tar_at_far(scores, labels, 0.01) == 0.75


def test_bootstrap_ci_is_stratified_and_deterministic() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(50)
    labels = np.arange(50) < 7
    # The genuine count is fixed in every stratified replicate -> degenerate interval.
    assert m.bootstrap_ci(lambda s, lab: float(lab.sum()), scores, labels, n=50) == (7.0, 7.0)
    a = m.bootstrap_ci(lambda s, lab: float(s[lab].mean()), scores, labels, n=200, seed=3)
    b = m.bootstrap_ci(lambda s, lab: float(s[lab].mean()), scores, labels, n=200, seed=3)
    assert a == b
    assert a[0] < scores[labels].mean() < a[1]


def test_tar_at_far_with_ci_brackets_value() -> None:
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(2, 1, 300), rng.normal(0, 1, 3000)]
    labels = np.r_[np.ones(300, bool), np.zeros(3000, bool)]
    est = m.tar_at_far_with_ci(scores, labels, 0.01, n=200)
    assert est.value == m.tar_at_far(scores, labels, 0.01)
    assert est.low <= est.value <= est.high
    assert est.high - est.low < 0.3


# ---- accuracy ----


def test_ten_fold_accuracy_separable_is_perfect() -> None:
    rng = np.random.default_rng(42)
    gen = rng.uniform(0.6, 1.0, 300)
    imp = rng.uniform(0.0, 0.4, 300)
    scores = np.r_[gen, imp]
    labels = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    folds = np.tile(np.arange(10), 60)
    res = m.ten_fold_accuracy(scores, labels, folds)
    assert res.mean == 1.0
    assert res.std == 0.0
    assert res.per_fold.shape == (10,)
    assert res.fold_ids == tuple(range(10))
    assert np.all((res.thresholds > imp.max()) & (res.thresholds < gen.min()))


def test_ten_fold_accuracy_hand_built_two_folds() -> None:
    # Fold 0: genuine .9 .6, impostor .5 .2.  Fold 1: genuine .8 .4, impostor .3 .1 .05.
    # Train on fold 1 -> best midpoint .35 (5/5); on fold 0: .5 falsely accepted -> 3/4.
    # Train on fold 0 -> best midpoint .55 (4/4); on fold 1: .4 falsely rejected -> 4/5.
    scores = [0.9, 0.6, 0.5, 0.2, 0.8, 0.4, 0.3, 0.1, 0.05]
    labels = [True, True, False, False, True, True, False, False, False]
    folds = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    res = m.ten_fold_accuracy(scores, labels, folds)
    np.testing.assert_allclose(res.per_fold, [0.75, 0.8])
    np.testing.assert_allclose(res.thresholds, [0.35, 0.55])
    assert res.mean == pytest.approx(0.775)
    assert res.std == pytest.approx(0.025)


def test_best_accuracy_threshold() -> None:
    acc, t = m.best_accuracy_threshold([0.8, 0.4, 0.3, 0.1, 0.05], [True, True, False, False, False])
    assert t == pytest.approx(0.35)
    assert acc == 1.0
    # Equally good candidates .3 and reject-all (2/3 each): the middle (lower) one is taken.
    best = m.best_accuracy_threshold([0.1, 0.5, 0.9], [False, True, False])
    assert best.threshold == pytest.approx(0.3)
    assert best.accuracy == pytest.approx(2 / 3)
    # All impostors: rejecting everything is best.
    acc, t = m.best_accuracy_threshold([0.5, 0.7], [False, False])
    assert acc == 1.0 and t > 0.7


# ---- calibration ----


def _normal_survival(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def test_calibration_interval_holds_on_held_out_half_and_survives_json() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=200_000)
    fit_half, held_out = scores[:100_000], scores[100_000:]
    cal = m.Calibration.fit(fit_half)
    (est,) = cal.thresholds_at([1e-3])
    assert est.threshold == m.threshold_at_far(fit_half, 1e-3)
    assert est.low < est.threshold < est.high
    assert est.far_low < 1e-3 < est.far_high
    achieved = m.far_of_score(held_out, est.threshold)
    assert est.far_low <= achieved <= est.far_high
    assert est.far_low <= _normal_survival(est.threshold) <= est.far_high  # the population FAR

    text = json.dumps(cal.to_dict())
    assert len(text) < 20_000  # a summary, not 100k scores
    restored = m.Calibration.from_dict(json.loads(text))
    assert not restored.has_full_data and restored.n_impostor == 100_000
    (est2,) = restored.thresholds_at([1e-3])
    assert (est2.threshold, est2.low, est2.high) == (est.threshold, est.low, est.high)
    assert est2.far_low <= achieved <= est2.far_high
    # Between table entries the restored thresholds interpolate and stay ordered.
    (mid,) = restored.thresholds_at(3e-3)
    assert restored.thresholds_at(1e-2)[0].threshold < mid.threshold < est.threshold
    with pytest.raises(ValueError, match="outside"):
        restored.thresholds_at([1e-7])

    # far_of agrees with the full-data estimate within 10 % relative in the tail (FAR <= 0.1).
    tail = np.sort(fit_half)[-10_000:]
    probe = np.r_[tail[::10], (tail[1::10] + tail[:-1:10]) / 2]
    full = np.array([cal.far_of(s).far for s in probe])
    compact = np.array([restored.far_of(s).far for s in probe])
    assert np.max(np.abs(compact / full - 1)) < 0.10
    # Why the agreement holds for any data: the 100 highest scores are all knots, and beyond them adjacent
    # knots differ by < 10 % in FAR, so both estimates lie in the same < 10 % wide bracket.
    assert set(np.sort(fit_half)[-100:]) <= set(restored.knot_scores)
    beyond = restored.knot_fars[restored.knot_fars >= 100 / 100_000]
    assert np.max(beyond[:-1] / beyond[1:]) < 1.1
    assert cal.far_of(est.threshold).far == pytest.approx(1e-3, rel=0.02)
    top = cal.far_of(fit_half.max() + 1)
    assert top.upper_bound and top.far == 1e-5
    assert restored.far_of(fit_half.max() + 1) == top
    assert cal.far_of(fit_half.min() - 1).far == 1.0


def test_calibration_far_of_exact_at_observed_scores_and_tar() -> None:
    imp = np.arange(1000, dtype=np.float64)
    cal = m.Calibration.fit(imp, genuine_scores=[995.0, 500.0], n_boot=50)
    assert cal.far_of(989.0).far == pytest.approx(0.011)
    assert cal.far_of(999.0) == m.FarEstimate(far=0.001, upper_bound=False)
    (est,) = cal.thresholds_at([0.01])
    assert est.threshold == np.nextafter(989.0, np.inf)
    assert est.tar == 0.5
    restored = m.Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert restored.thresholds_at([0.01])[0].tar == 0.5
    with pytest.raises(ValueError, match="at least 10"):
        m.Calibration.fit([1.0, 2.0])
    with pytest.raises(ValueError, match="format"):
        m.Calibration.from_dict({"format": "other"})


# ---- identification ----


def test_cmc_hand_matrix() -> None:
    gallery = ["a", "b", "c"]
    probes = ["a", "b", "x", "c"]
    sim = [
        [0.9, 0.1, 0.3],  # a: rank 1
        [0.5, 0.4, 0.2],  # b: a scores higher -> rank 2
        [0.8, 0.2, 0.1],  # x: non-mated, ignored
        [0.6, 0.7, 0.6],  # c: b higher, a tied -> rank 3 (ties count against)
    ]
    np.testing.assert_allclose(m.cmc(sim, probes, gallery, max_rank=3), [1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(m.cmc(sim, probes, gallery, max_rank=5), [1 / 3, 2 / 3, 1, 1, 1])


def test_cmc_groups_gallery_entries_by_identity() -> None:
    # Identity 1 has two entries; its best (0.8) beats identity 2 (0.5) -> rank 1.
    rates = m.cmc([[0.2, 0.8, 0.5]], [1], [1, 1, 2], max_rank=2)
    np.testing.assert_allclose(rates, [1.0, 1.0])
    with pytest.raises(ValueError, match="mated"):
        m.cmc([[0.2, 0.8]], [9], [1, 2], max_rank=1)


def test_fpir_fnir_hand_case() -> None:
    mated = [0.9, 0.8, 0.7, 0.4]
    correct = [True, False, True, True]
    nonmated = [0.85, 0.5, 0.3, 0.2]
    curve = m.fpir_fnir(mated, correct, nonmated)
    np.testing.assert_array_equal(curve.thresholds, [np.inf, 0.9, 0.85, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2])
    np.testing.assert_allclose(curve.fpir, [0, 0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.fnir, [1, 0.75, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25, 0.25])
    # FPIR <= 25 %: threshold just above .5 -> hits .9 and .7 -> FNIR = 2/4.
    assert m.fnir_at_fpir(mated, correct, nonmated, fpir=0.25) == 0.5
    # FPIR 0: threshold just above .85 -> only .9 -> FNIR = 3/4.
    assert m.fnir_at_fpir(mated, correct, nonmated, fpir=0.0) == 0.75


# ---- clustering ----


def test_bcubed_and_pairwise_hand_case() -> None:
    pred = [0, 0, 0, 0, 1]
    true = ["p", "p", "q", "q", "q"]
    # Cells: (0,p)=2, (0,q)=2, (1,q)=1; predicted sizes 4, 1; true sizes 2, 3.
    b = m.bcubed(pred, true)
    assert b.precision == pytest.approx(3 / 5)  # (4/4 + 4/4 + 1/1) / 5
    assert b.recall == pytest.approx(11 / 15)  # (4/2 + 4/3 + 1/3) / 5
    assert m.bcubed_f(pred, true) == pytest.approx(0.66)
    pw = m.pairwise_precision_recall(pred, true)
    assert pw.precision == pytest.approx(2 / 6)  # 2 true pairs among C(4,2) predicted
    assert pw.recall == pytest.approx(2 / 4)  # of C(2,2) + C(3,2) true pairs
    assert m.bcubed_f(true, true) == 1.0
    singletons = m.pairwise_precision_recall([0, 1, 2], [0, 0, 1])
    assert (singletons.precision, singletons.recall) == (1.0, 0.0)


# ---- liveness ----


def test_apcer_bpcer_acer_hand_case() -> None:
    attacks = [0.1, 0.6, 0.4, 0.9]
    bona = [0.8, 0.3, 0.95, 0.5, 0.7]
    r = m.apcer_bpcer_acer(attacks, bona, 0.5)
    assert (r.apcer, r.bpcer) == (0.5, 0.2)  # .6, .9 accepted; .3 rejected (.5 is accepted: >=)
    assert r.acer == pytest.approx(0.35)
    r = m.apcer_bpcer_acer(attacks, bona, 0.5, attack_species=["print", "replay", "replay", "replay"])
    assert r.apcer == pytest.approx(2 / 3)  # worst species: replay, 2 of 3 accepted
    # Descending thresholds (APCER, BPCER): .7 (.25, .4) then .6 (.5, .4); APCER-BPCER goes -.15 -> +.1,
    # crossing at w = .6 of the way: EER = .25 + .6 * .25 = .4 at threshold .7 - .6 * .1 = .64.
    assert m.liveness_eer(attacks, bona) == pytest.approx((0.4, 0.64))


# ---- plots ----


def test_plots_write_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from facewise.eval import plots

    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(2, 1, 500), rng.normal(0, 1, 500)]
    labels = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    far, tar, _ = m.roc_curve(scores, labels)
    roc = plots.plot_roc({"model": (far, tar)}, tmp_path / "roc.png")
    det = plots.plot_det({"model": (far, 1 - tar)}, tmp_path / "sub" / "det.png")
    for path in (roc, det):
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_probit_fallback_matches_reference_values() -> None:
    from facewise.eval.plots import _acklam_ppf, norm_ppf

    p = np.array([1e-6, 0.01, 0.025, 0.5, 0.975, 0.999])
    expected = [-4.753424308822899, -2.3263478740408408, -1.959963984540054, 0.0, 1.959963984540054,
                3.090232306167813]  # fmt: skip
    np.testing.assert_allclose(_acklam_ppf(p), expected, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(norm_ppf(p), expected, rtol=1e-8, atol=1e-12)
