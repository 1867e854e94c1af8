"""Open-set identification on a folder of identities (``<root>/<person>/*.jpg``).

Protocol (seeded): identities with at least ``min_images`` images are split at random into an
enrolled half and a never-enrolled half. Each enrolled person contributes ``gallery_per_person``
images to the gallery; their other images are mated probes. Every image of a never-enrolled
person is a non-mated probe. A person's score is the maximum over their gallery images.
Reports CMC rank-1/rank-5 (mated probes, closed-set view), the FPIR-FNIR curve and FNIR at
FPIR = 1 %.

With ``persons`` (and ``strangers``) the protocol enrols that many persons (nested: the first 100 of a 400-person
run are the 100-person gallery) and searches one photo of each never-enrolled stranger (any identity of the
folder, single-photo ones included). :func:`decisions_at_sizes` then checks the decisions facewise makes at each
gallery size against what they state: the observed FPIR (share of strangers given a name) next to the FPIR the
decision states, for the default rule (a target FPIR whose threshold follows the gallery size) and for a fixed
per-comparison FAR of 1e-3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facewise.core.imageio import is_image_path
from facewise.decision.matching import check_decision, decide
from facewise.eval import metrics as mt
from facewise.eval.embed import EmbeddedImages
from facewise.models.profiles import Profile


@dataclass(frozen=True)
class OpenSetProtocol:
    min_images: int = 2
    gallery_per_person: int = 1
    enrolled_share: float = 0.5
    seed: int = 0
    persons: int | None = None  # enrol this many persons (else enrolled_share of those with min_images)
    strangers: int | None = None  # search one photo of this many never-enrolled identities (else every photo)
    probes_per_person: int | None = None  # mated probes per enrolled person (else all their other photos)


def identity_folder(root: Path) -> dict[str, list[str]]:
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(str(f) for f in d.iterdir() if f.is_file() and is_image_path(f))
        if files:
            out[d.name] = files
    if not out:
        # flat layouts such as Yale (subjectNN.condition): identity = text before the first dot
        flat: dict[str, list[str]] = {}
        for f in sorted(p for p in root.iterdir() if p.is_file()):
            flat.setdefault(f.name.split(".")[0], []).append(str(f))
        out = flat
    return out


def split(ids: dict[str, list[str]], proto: OpenSetProtocol) -> tuple[list[tuple[str, str]], list[tuple[str, str]],
                                                                     list[tuple[str, str]]]:
    """(gallery, mated probes, non-mated probes) as (person, path) lists."""
    rng = np.random.default_rng(proto.seed)
    names = [n for n, f in ids.items() if len(f) >= proto.min_images]
    names = [names[i] for i in rng.permutation(len(names))]
    k = int(round(len(names) * proto.enrolled_share)) if proto.persons is None else min(proto.persons, len(names))
    enrolled, others = names[:k], names[k:]
    gallery, mated, nonmated = [], [], []
    for n in enrolled:
        files = [ids[n][i] for i in rng.permutation(len(ids[n]))]
        gallery += [(n, f) for f in files[: proto.gallery_per_person]]
        mated += [(n, f) for f in files[proto.gallery_per_person:][: proto.probes_per_person]]
    if proto.strangers is not None:  # one photo each, single-photo identities too
        rest = sorted(set(ids) - set(enrolled))
        rest = [rest[i] for i in rng.permutation(len(rest))][: proto.strangers]
        return gallery, mated, [(n, ids[n][0]) for n in rest]
    for n in others:
        nonmated += [(n, f) for f in ids[n]]
    return gallery, mated, nonmated


def evaluate_open_set(emb: EmbeddedImages, gallery: list[tuple[str, str]], mated: list[tuple[str, str]],
                      nonmated: list[tuple[str, str]]) -> dict[str, Any]:
    g = emb.vectors[emb.rows([p for _, p in gallery])]
    g_labels = np.array([n for n, _ in gallery])
    probes = mated + nonmated
    p = emb.vectors[emb.rows([x for _, x in probes])]
    sim = p @ g.T
    p_labels = np.array([n for n, _ in probes])
    rates = mt.cmc(sim, p_labels, g_labels, max_rank=min(5, len(set(g_labels))))
    ids, inv = np.unique(g_labels, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
    id_scores = np.maximum.reduceat(sim[:, order], starts, axis=1)
    top = id_scores.argmax(1)
    top_score = id_scores.max(1)
    m = len(mated)
    correct = ids[top[:m]] == p_labels[:m]
    curve = mt.fpir_fnir(top_score[:m], correct, top_score[m:])
    fnir1 = mt.fnir_at_fpir(top_score[:m], correct, top_score[m:], fpir=0.01)
    return {
        "gallery_persons": len(ids), "gallery_images": len(gallery), "mated_probes": m,
        "nonmated_probes": len(nonmated), "rank1": round(float(rates[0]), 5),
        "rank5": round(float(rates[min(4, len(rates) - 1)]), 5), "fnir_at_fpir_0.01": round(fnir1, 5),
        "curve": {"fpir": curve.fpir[:: max(1, len(curve.fpir) // 200)].round(5).tolist(),
                  "fnir": curve.fnir[:: max(1, len(curve.fnir) // 200)].round(5).tolist()},
        "no_face_images": int(emb.no_face.sum()),
    }


def decisions_at_sizes(emb: EmbeddedImages, gallery: list[tuple[str, str]], mated: list[tuple[str, str]],
                       nonmated: list[tuple[str, str]], profile: Profile, sizes: list[int],
                       far: float = 1e-3) -> list[dict[str, Any]]:
    """At each gallery size N (the first N enrolled persons): the threshold facewise identifies at by default
    (a target FPIR, ``decision.matching.decide``) and the one at a fixed per-comparison ``far``, each with the FPIR
    it states and the FPIR observed (strangers given some name) and FNIR (mated probes not given their name)."""
    order = list(dict.fromkeys(n for n, _ in gallery))
    strangers = emb.vectors[emb.rows([x for _, x in nonmated])]
    rows = []
    for size in sizes:
        persons = set(order[:size])
        if len(persons) < size:
            break
        gal = [(n, p) for n, p in gallery if n in persons]
        mat = [(n, p) for n, p in mated if n in persons]
        g = emb.vectors[emb.rows([p for _, p in gal])]
        labels = np.array([n for n, _ in gal])
        s_top = (strangers @ g.T).max(1)
        m_sim = emb.vectors[emb.rows([p for _, p in mat])] @ g.T
        m_best, m_true = m_sim.max(1), labels[m_sim.argmax(1)] == np.array([n for n, _ in mat])
        default = decide(profile, {}, size)
        fixed = check_decision(profile, {}, target_far=far, searched=size)
        row: dict[str, Any] = {"persons": size, "strangers": len(nonmated), "mated_probes": len(mat)}
        for key, d in (("default", default), (f"far_{far:g}", fixed)):
            row[key] = {"threshold": round(d.threshold, 4), "source": d.source,
                        "far_per_comparison": d.far_at_threshold, "stated_fpir": d.fpir,
                        "observed_fpir": round(float(np.mean(s_top >= d.threshold)), 5),
                        "fnir": round(float(np.mean(~(m_true & (m_best >= d.threshold)))), 5) if len(mat) else None}
        rows.append(row)
    return rows
