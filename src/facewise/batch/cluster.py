"""Clustering unknown faces into people: incremental, with periodic full re-clustering.

Data model (any gallery store): unknown faces sit in one collection (``unknown`` by default, filled by
``facewise index`` from plain photo folders) as samples of the person :data:`UNCLUSTERED`. A cluster
is an ordinary person named ``cluster-NNNNNN``; renaming it ("Alice") makes it *named*, which
re-clustering never breaks up. So people merge / split / rename are ordinary gallery operations.

* :meth:`Clusterer.assign` (incremental): every waiting face joins the cluster or named person with the
  highest *average* cosine similarity to its faces (average linkage, through per-cluster vector sums)
  when that is at least ``threshold``, else starts a new cluster. New faces are taken in order, so
  later faces can join clusters started by earlier ones.
* :meth:`Clusterer.recluster` (periodic): agglomerative average-linkage clustering of every face in
  unnamed clusters (and those still waiting), merging while the best pair scores ``threshold`` or
  more; named people are fixed and take faces that match them. New clusters keep the old name they
  overlap most, so names are stable.
* Cannot-link: two faces of one photo (same image sha256) are different people. No step puts them in
  one cluster: a face never joins a cluster holding a face of its photo, and two clusters sharing a
  photo never merge (``merge`` refuses unless forced).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facewise.decision.rates import ScoreScale
from facewise.errors import ConflictError, FacewiseError
from facewise.gallery.names import CLUSTER_PREFIX, UNCLUSTERED, is_cluster_name
from facewise.gallery.store import Store
from facewise.models.profiles import load_profile
from facewise.types import Person

log = logging.getLogger(__name__)

# Average linkage joins at a per-comparison false-accept rate, converted through the collection's profile's own
# calibration (decision/rates.py): fast 0.312, default (dlib) 0.922. Measured on a messy LFW library of 40 people
# (tests/test_cluster_profiles.py, docs/SCALE.md): BCubed precision stays 1.0 for both up to FAR 4e-3 and drops at
# 8e-3; recall needs >= 1e-3 with default (2e-4, fast's old cosine 0.40, leaves default at F 0.91).
# Split re-clusters a person 20 times stricter.
CLUSTER_FAR = 2e-3
SPLIT_FAR_FACTOR = 20.0
DEFAULT_THRESHOLD = 0.40  # the cosine used only when the profile has no calibration (or is not known here)



@dataclass
class ClusterReport:
    faces: int = 0
    assigned: int = 0  # joined an existing cluster or named person
    new_clusters: int = 0
    moved: int = 0
    clusters: int = 0
    named: int = 0
    cannot_link_blocks: int = 0  # joins or merges refused by the same-photo rule
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("faces", "assigned", "new_clusters", "moved", "clusters", "named",
                                                "cannot_link_blocks")}


def _move(store: Store, collection: str, sample_ids: list[int], person: str | int) -> Person:
    store.require("move_samples", "move samples between people (clustering needs it)")  # else CapabilityError
    return store.move_samples(collection, sample_ids, person)


class Clusterer:
    """Clusters the faces of one collection of a store (see the module doc)."""

    def __init__(self, store: Store, collection: str = "unknown", threshold: float | None = None, *,
                 far: float = CLUSTER_FAR) -> None:
        """``threshold``: a score on the profile's scale; default: the score at per-comparison FAR ``far``
        (:data:`CLUSTER_FAR`) from the calibration of the profile the collection was filled with."""
        self.store, self.collection = store, collection
        self.scale = _scale_of(store, collection)
        self.threshold = self.scale.at_far(far, DEFAULT_THRESHOLD) if threshold is None else float(threshold)
        far_here = float(self.scale.far([self.threshold])[0]) if self.scale.calibrated else float("nan")
        self.split_threshold = (self.scale.at_far(far_here / SPLIT_FAR_FACTOR, 0.0) if self.scale.calibrated
                                else min(0.95, self.threshold + 0.1))

    # -- reading the collection ------------------------------------------------------------------
    def _state(self) -> tuple[list[Person], dict[int, list[Any]], np.ndarray, list[int]]:
        persons = self.store.list_persons(self.collection)
        samples = self.store.list_samples(self.collection)
        by_person: dict[int, list[Any]] = defaultdict(list)
        for s in samples:
            by_person[s.person_id].append(s)
        ids = [s.id for s in samples]
        vecs = self.store.sample_vectors(self.collection, ids) if ids else np.zeros((0, 1), np.float32)
        return persons, by_person, vecs, ids

    def _next_name(self, used: set[str]) -> str:
        n = 1 + max((int(x[len(CLUSTER_PREFIX):]) for x in used
                     if x.startswith(CLUSTER_PREFIX) and x[len(CLUSTER_PREFIX):].isdigit()), default=0)
        name = f"{CLUSTER_PREFIX}{n:06d}"
        used.add(name)
        return name

    # -- incremental -----------------------------------------------------------------------------
    def assign(self) -> ClusterReport:
        """Place every waiting face (person ``~unclustered``) in a cluster (see the module doc)."""
        persons, by_person, vecs, ids = self._state()
        row = {sid: i for i, sid in enumerate(ids)}
        report = ClusterReport()
        pending_person = next((p for p in persons if p.name == UNCLUSTERED), None)
        if pending_person is None or not by_person.get(pending_person.id):
            return self._finish(report)
        targets = [p for p in persons if p.name != UNCLUSTERED and by_person.get(p.id)]
        names = [p.name for p in targets]
        sums = [vecs[[row[s.id] for s in by_person[p.id]]].sum(0) for p in targets]
        counts = [len(by_person[p.id]) for p in targets]
        photos: list[set[str]] = [{s.image_sha256 for s in by_person[p.id]} for p in targets]
        moves: dict[str, list[int]] = defaultdict(list)
        used = {p.name for p in persons}
        waiting = sorted(by_person[pending_person.id], key=lambda s: s.id)
        report.faces = len(waiting)
        for s in waiting:
            v = vecs[row[s.id]]
            best = -1
            if sums:
                avg = (np.stack(sums) @ v) / np.asarray(counts, np.float32)
                for j in np.argsort(-avg):
                    if avg[j] < self.threshold:
                        break
                    if s.image_sha256 in photos[j]:
                        report.cannot_link_blocks += 1
                        continue
                    best = int(j)
                    break
            if best < 0:
                names.append(self._next_name(used))
                sums.append(v.copy())
                counts.append(1)
                photos.append({s.image_sha256})
                report.new_clusters += 1
            else:
                sums[best] = sums[best] + v
                counts[best] += 1
                photos[best].add(s.image_sha256)
                report.assigned += 1
            moves[names[best] if best >= 0 else names[-1]].append(s.id)
        for name, sids in moves.items():
            _move(self.store, self.collection, sids, name)
            report.moved += len(sids)
        self.store.delete_person(self.collection, pending_person.id)
        return self._finish(report)

    # -- full re-clustering ----------------------------------------------------------------------
    def recluster(self) -> ClusterReport:
        """Re-cluster every face outside named people from scratch (average linkage, cannot-link)."""
        persons, by_person, vecs, ids = self._state()
        row = {sid: i for i, sid in enumerate(ids)}
        named = [p for p in persons if not is_cluster_name(p.name) and by_person.get(p.id)]
        free = [s for p in persons if is_cluster_name(p.name) for s in by_person.get(p.id, [])]
        report = ClusterReport(faces=len(free))
        if not free:
            return self._finish(report)
        # named people are fixed groups that can absorb faces; free faces start as singletons
        groups: list[list[Any]] = [list(by_person[p.id]) for p in named] + [[s] for s in free]
        fixed = len(named)
        labels = agglomerate([vecs[[row[s.id] for s in g]] for g in groups], [{s.image_sha256 for s in g}
                                                                                 for g in groups],
                             self.threshold, fixed, report)
        old_of = {s.id: s.person_id for p in persons for s in by_person.get(p.id, [])}
        pname = {p.id: p.name for p in persons}
        members: dict[int, list[int]] = defaultdict(list)
        for g, lab in enumerate(labels):
            members[lab].extend(s.id for s in groups[g])
        used = {p.name for p in persons}
        taken: set[str] = set()
        for lab in sorted(members, key=lambda x: (-len(members[x]), x)):
            sids = members[lab]
            anchor = next((g for g in range(fixed) if labels[g] == lab), None)
            if anchor is not None:
                target = named[anchor].name
            else:  # keep the old cluster name this group overlaps most (stable names), else a new one
                votes = Counter(pname[old_of[s]] for s in sids if pname[old_of[s]] != UNCLUSTERED)
                target = next((n for n, _ in votes.most_common() if n not in taken), "") or self._next_name(used)
            taken.add(target)
            change = [s for s in sids if pname[old_of[s]] != target]
            if change:
                _move(self.store, self.collection, change, target)
                report.moved += len(change)
        for p in self.store.list_persons(self.collection):
            if is_cluster_name(p.name) and p.n_samples == 0:
                self.store.delete_person(self.collection, p.id)
        return self._finish(report)

    def _finish(self, report: ClusterReport) -> ClusterReport:
        persons = self.store.list_persons(self.collection)
        report.clusters = sum(p.name.startswith(CLUSTER_PREFIX) for p in persons)
        report.named = sum(not is_cluster_name(p.name) for p in persons)
        return report

    # -- people operations -----------------------------------------------------------------------
    def merge(self, source: str | int, target: str | int, force: bool = False) -> Person:
        """Move every face of ``source`` into ``target`` and delete ``source``."""
        a = self.store.get_person(self.collection, source)
        b = self.store.get_person(self.collection, target)
        if a.id == b.id:
            raise FacewiseError("cannot merge a person into itself")
        sa = self.store.list_samples(self.collection, a.id)
        shared = {s.image_sha256 for s in sa} & {s.image_sha256 for s in self.store.list_samples(self.collection,
                                                                                                    b.id)}
        if shared and not force:
            raise ConflictError(f"{a.name!r} and {b.name!r} both appear in {len(shared)} photo(s): two faces of "
                                "one photo are two people (merge with force to do it anyway)", what="force",
                                value=False, valid="force to merge anyway")
        out = _move(self.store, self.collection, [s.id for s in sa], b.id) if sa else b
        self.store.delete_person(self.collection, a.id)
        return out

    def split(self, person: str | int, sample_ids: list[int] | None = None,
              new_name: str | None = None) -> list[Person]:
        """Move ``sample_ids`` out of ``person`` into ``new_name`` (or a new cluster); without ids, re-cluster
        the person's faces at a stricter threshold and move every group but the largest into new clusters."""
        p = self.store.get_person(self.collection, person)
        samples = self.store.list_samples(self.collection, p.id)
        used = {x.name for x in self.store.list_persons(self.collection)}
        if sample_ids:
            mine = {s.id for s in samples}
            bad = [s for s in sample_ids if s not in mine]
            if bad:
                raise FacewiseError(f"samples {bad} are not faces of {p.name!r}")
            return [_move(self.store, self.collection, list(sample_ids), new_name or self._next_name(used))]
        if len(samples) < 2:
            return []
        vecs = self.store.sample_vectors(self.collection, [s.id for s in samples])
        labels = agglomerate([vecs[i:i + 1] for i in range(len(samples))], [{s.image_sha256} for s in samples],
                             self.split_threshold, 0, ClusterReport())
        groups: dict[int, list[int]] = defaultdict(list)
        for s, lab in zip(samples, labels, strict=True):
            groups[lab].append(s.id)
        ordered = sorted(groups.values(), key=len, reverse=True)
        return [_move(self.store, self.collection, g, self._next_name(used)) for g in ordered[1:]]


def _scale_of(store: Store, collection: str) -> ScoreScale:
    """The score scale of the profile a collection was filled with (uncalibrated if that profile is unknown here)."""
    try:
        name = store.get_collection(collection).profile
        return ScoreScale.of(load_profile(name))
    except FacewiseError as exc:
        log.info("collection %r: no calibrated profile (%s); clustering uses cosine constants", collection, exc)
        return ScoreScale(str(collection), None)


def agglomerate(groups: list[np.ndarray], photos: list[set[str]], threshold: float, fixed: int,
                report: ClusterReport) -> list[int]:
    """Average-linkage agglomeration of starting groups (rows of unit vectors) with cannot-link.

    Groups ``[0, fixed)`` never merge with each other. Returns a cluster label per starting group.
    Similarities between clusters are kept as sums (``S[a, b]`` = sum over pairs), so the average is
    ``S / (n_a n_b)`` and a merge adds rows: exact average linkage in O(G²) memory.
    """
    g = len(groups)
    if g == 0:
        return []
    sums = np.stack([x.sum(0) for x in groups]).astype(np.float64)
    n = np.array([len(x) for x in groups], np.float64)
    pair = sums @ sums.T  # sum of pairwise cosines between groups
    blocked = np.zeros((g, g), bool)
    index: dict[str, list[int]] = defaultdict(list)
    for i, ph in enumerate(photos):
        for h in ph:
            index[h].append(i)
    for members in index.values():
        if len(members) > 1:
            blocked[np.ix_(members, members)] = True
    if fixed > 1:
        blocked[:fixed, :fixed] = True
    alive = np.ones(g, bool)
    label = np.arange(g)

    def avg() -> np.ndarray:
        a = pair / np.outer(n, n)
        a[blocked | ~alive[:, None] | ~alive[None, :]] = -np.inf
        np.fill_diagonal(a, -np.inf)
        return a

    a = avg()
    while True:
        flat = int(np.argmax(a))
        i, j = divmod(flat, g)
        if not np.isfinite(a[i, j]) or a[i, j] < threshold:
            break
        if j < fixed:  # keep a fixed group as the survivor (two fixed groups are blocked)
            i, j = j, i
        # merge j into i
        pair[i, :] += pair[j, :]
        pair[:, i] += pair[:, j]
        n[i] += n[j]
        blocked[i, :] |= blocked[j, :]
        blocked[:, i] |= blocked[:, j]
        alive[j] = False
        label[label == j] = i
        # refresh row/column i and clear j
        row = pair[i] / (n[i] * n)
        row[blocked[i] | ~alive] = -np.inf
        row[i] = -np.inf
        a[i, :] = row
        a[:, i] = row
        a[j, :] = -np.inf
        a[:, j] = -np.inf
    return [int(x) for x in label]
