"""Example photos for ``facewise demo``: found in the shared data folder, else fetched once into the cache.

The photos are face_recognition's ``examples/knn_examples`` (MIT licence): five named people to enrol
(``train/<person>/*.jpg``) and test photos, some with several faces. Each file is checked against its sha256;
nothing is downloaded unless the demo asks for it, and an offline machine gets one message saying what to
download and where.
"""

from __future__ import annotations

import logging
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from facewise import settings
from facewise.errors import EXIT_MODEL, FacewiseError, ModelIntegrityError
from facewise.models.catalogue import _download, cache_dir, sha256_file

log = logging.getLogger(__name__)

SOURCE = "https://github.com/ageitgey/face_recognition/tree/master/examples/knn_examples"
BASE_URL = "https://raw.githubusercontent.com/ageitgey/face_recognition/master/examples/knn_examples"
SHARED_SUBDIR = Path("video/face_recognition_examples/examples/knn_examples")

# path relative to knn_examples/ -> sha256 (the files as published in face_recognition's repository)
FILES: dict[str, str] = {
    "train/alex_lacamoire/img1.jpg": "348e0a705ebd86f531553298348913a0483a70c966f1eebea5d8409b2421516b",
    "train/biden/biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
    "train/biden/biden2.jpg": "593ae76f7fdafe582535e288751e665f0533d5c9d5dc7264db24d7e6b6ce4730",
    "train/kit_harington/john1.jpeg": "74872ce95f0af6366f2b58a7017b72debf6ed91c197fe7bf6a759c32ebe06543",
    "train/kit_harington/john2.jpeg": "c0970011d277d4772d488f60478b59fce212dabe824ce8e0c8032673ccad76ac",
    "train/obama/obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    "train/obama/obama2.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    "train/rose_leslie/img1.jpg": "0f3903bcc72a9c54ea8fb2075464fd6dc74a4fe55a09e8095ab948020b697baa",
    "train/rose_leslie/img2.jpg": "274a9c97300ed1657faa1c293979c75013f2998ee0403c79fbbc10be67b442d2",
    "test/alex_lacamoire1.jpg": "69c21d12ef62965b8c409db5672783ac1532cc7bfd2beffe81003fb3bd580364",
    "test/johnsnow_test1.jpg": "eb08fa837c8a86051eb6ca5370b76bb926a7f7deef8c449d06f9a280267f80b5",
    "test/kit_with_rose.jpg": "b8ecc2e34fe0af3101cf7b7dc0502c51d3b48d972b200462e7f5359a7c609fec",
    "test/obama1.jpg": "a2840cf4fd84072fc998e54033665793ca78fc5be77da0aba6e6b95d99d0ad15",
    "test/obama_and_biden.jpg": "b8781c1f734616a942ce67626e104151f7d891bc7064ae8a3db175f064357a1a",
}


class ExamplesUnavailableError(FacewiseError):
    """The example photos are neither on this machine nor downloadable from here."""

    code = "examples_unavailable"
    exit_code = EXIT_MODEL  # like a missing model: something to download first
    http_status = 503


@dataclass(frozen=True)
class Examples:
    root: Path

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def test(self) -> Path:
        return self.root / "test"


def _complete(root: Path) -> bool:
    return all((root / rel).is_file() for rel in FILES)


def local_examples() -> Examples | None:
    """The photos already on this machine: the shared data folder (``FACEWISE_DATA``), then the cache."""
    candidates = []
    data = settings.data_dir()
    if data is not None:
        candidates.append(data / SHARED_SUBDIR)
    candidates.append(cache_dir().parent / "examples" / "knn_examples")
    for root in candidates:
        if _complete(root):
            return Examples(root)
    return None


def fetch_examples(dest: Path | None = None, base_url: str | None = None, timeout: float = 30.0) -> Examples:
    """Download the missing photos into ``dest`` (the user cache) and check each sha256."""
    dest = dest or cache_dir().parent / "examples" / "knn_examples"
    base_url = (base_url or settings.examples_url() or BASE_URL).rstrip("/")
    for rel, sha in FILES.items():
        target = dest / rel
        if target.is_file() and sha256_file(target) == sha:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        url = f"{base_url}/{rel}"
        log.info("downloading %s -> %s", url, target)
        try:
            tmp = _download(url, target, None, timeout, limit=50 * 1024 * 1024)
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            raise ExamplesUnavailableError(
                f"could not download the demo's example photos ({url}: {exc}); this machine may be offline. "
                f"Download the folders train/ and test/ of {SOURCE} into {dest}, "
                "or run the demo on your own photos: make demo TRAIN=<folder of person/*.jpg> TEST=<photos>"
            ) from None
        if sha256_file(tmp) != sha:
            tmp.unlink(missing_ok=True)
            raise ModelIntegrityError(f"downloaded example photo {rel!r} from {url} does not match its sha256 {sha}")
        tmp.replace(target)
    return Examples(dest)


def examples(fetch: bool = True) -> Examples:
    """The example photos: local if present, else fetched (``fetch=True``), else a clear error."""
    found = local_examples()
    if found is not None:
        return found
    if not fetch:
        raise ExamplesUnavailableError(f"the demo's example photos are not on this machine; see {SOURCE}")
    return fetch_examples()
