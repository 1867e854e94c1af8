"""Property-based tests (hypothesis): parsers answer any input with a result or a clear error, and the store
keeps its invariants under any sequence of adds, deletes and renames."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the test extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule  # noqa: E402
from PIL import Image  # noqa: E402

from facewise.core.imageio import DecodedImage, decode_bytes  # noqa: E402
from facewise.errors import ConflictError, FacewiseError, ImageError  # noqa: E402
from facewise.eval.pairs import Pair, parse_pairs_csv  # noqa: E402
from facewise.gallery import SQLiteStore  # noqa: E402
from facewise.gallery.doctor import diagnose  # noqa: E402
from reliability_helpers import new_sample, unit  # noqa: E402

DIM = 8


def _seeds() -> list[bytes]:
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (6, 7, 3), dtype=np.uint8))
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        im.save(buf, fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seeds()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with a few bytes overwritten, cut short, or spliced: deep into the decoders."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=64))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048), mutated_images()))
def test_decode_bytes_gives_an_image_or_an_image_error(data: bytes) -> None:
    try:
        img = decode_bytes(data, "prop", limit=2_000_000)
    except ImageError as exc:
        assert str(exc).startswith("prop: ")
        return
    assert isinstance(img, DecodedImage)
    assert img.pixels.dtype == np.uint8 and img.pixels.ndim == 3 and img.pixels.shape[2] == 3


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.one_of(CELL, st.sampled_from(["1", "0", "yes", "no", "a/x.jpg", "b/y.jpg"])),
                              min_size=0, max_size=4), max_size=8),
       raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_parse_pairs_csv_gives_pairs_or_a_value_error(tmp_path: Path, rows: list[list[str]], raw: bytes | None) -> None:
    """Any file: a list of pairs, or a ValueError naming the file (ImageError-like clarity), never anything else."""
    f = tmp_path / "pairs.csv"
    if raw is not None:
        f.write_bytes(raw)
    else:
        f.write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    try:
        pairs = parse_pairs_csv(f, n_folds=2)
    except (ValueError, FacewiseError) as exc:
        assert "pairs.csv" in str(exc) or "codec" in str(exc), str(exc)
        return
    assert pairs and all(isinstance(p, Pair) and p.fold in (0, 1) for p in pairs)


class StoreMachine(RuleBasedStateMachine):
    """Random adds (in batches, duplicates included), deletes and renames against a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.store = SQLiteStore(":memory:", cipher=None)
        self.store.ensure_collection("c", "p", "sig", DIM)
        self.rng = np.random.default_rng(0)
        self.model: dict[int, tuple[str, np.ndarray]] = {}  # sample id -> (person, vector)
        self.persons: set[str] = set()
        self.next_sha = 0

    @rule(people=st.lists(st.sampled_from(["ann", "bob", "cy", "dee"]), min_size=1, max_size=5),
          dup=st.booleans())
    def add(self, people: list[str], dup: bool) -> None:
        vecs = unit(self.rng, len(people), DIM)
        batch = []
        for name, v in zip(people, vecs, strict=True):
            self.next_sha += 1
            batch.append(new_sample(name, v, f"h{self.next_sha}"))
        resent = dup and bool(self.model)
        if resent:  # re-send an existing image: must be skipped, not duplicated
            first = self.store.list_samples("c")[0]
            batch.append(new_sample(self.model[first.id][0], self.model[first.id][1], first.image_sha256))
        ids = self.store.add_samples("c", batch)
        for s, sid in zip(batch, ids, strict=True):
            if sid is not None:
                self.model[sid] = (s.person, np.asarray(s.embedding, np.float32))
                self.persons.add(s.person)
        if resent:
            assert ids[-1] is None

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 10_000))
    def delete_sample(self, pick: int) -> None:
        sid = sorted(self.model)[pick % len(self.model)]
        self.store.delete_sample("c", sid)
        del self.model[sid]

    @precondition(lambda self: bool(self.persons))
    @rule(pick=st.integers(0, 10_000))
    def delete_person(self, pick: int) -> None:
        name = sorted(self.persons)[pick % len(self.persons)]
        n = self.store.delete_person("c", name)
        gone = [sid for sid, (p, _) in self.model.items() if p == name]
        assert n == len(gone)
        for sid in gone:
            del self.model[sid]
        self.persons.discard(name)

    @precondition(lambda self: bool(self.persons))
    @rule(pick=st.integers(0, 10_000), new=st.sampled_from(["ann", "bob", "eve", "fay"]))
    def rename(self, pick: int, new: str) -> None:
        old = sorted(self.persons)[pick % len(self.persons)]
        try:
            self.store.rename_person("c", old, new)
        except ConflictError:
            assert (new in self.persons and new != old) or new == old
            return
        self.persons = (self.persons - {old}) | {new}
        self.model = {sid: (new if p == old else p, v) for sid, (p, v) in self.model.items()}

    @invariant()
    def database_and_matrix_agree(self) -> None:
        assert self.store.integrity_check() == []
        assert diagnose(self.store) == []
        ix = self.store.index("c")
        assert sorted(int(i) for i in ix.sample_ids) == sorted(self.model)
        names = {p.id: p.name for p in self.store.list_persons("c")}
        assert set(names.values()) == self.persons
        for row, sid in enumerate(ix.sample_ids):
            person, vec = self.model[int(sid)]
            assert names[int(ix.person_ids[row])] == person
            assert np.array_equal(ix.matrix[row], vec)

    def teardown(self) -> None:
        self.store.close()


StoreMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
test_store_state_machine = StoreMachine.TestCase
