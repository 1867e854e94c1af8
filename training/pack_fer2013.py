"""Pack the FER2013 JPEG folder tree into ONE ``.npz`` file (encoded JPEG bytes, not decoded pixels).

The pack exists so that the data set can travel to a GPU machine as a single file; it is read by
``training/train_expression.py --data-dir <pack>.npz`` exactly like the folder tree.

Layout of the pack (all arrays are plain numpy, no pickling):

* ``classes``            -- str  [7], alphabetical class names
* ``<split>_blob``       -- uint8 [total_bytes], the concatenated JPEG files of the split
* ``<split>_offsets``    -- int64 [n + 1], file i is ``blob[offsets[i]:offsets[i + 1]]``
* ``<split>_labels``     -- int64 [n], index into ``classes``
* ``<split>_names``      -- uint8 [...], UTF-8 ``<class>/<file name>`` lines joined by ``\\n`` (traceability)

Usage::

    python training/pack_fer2013.py --data-dir ../shared/data/fer2013 --out .gpu/fer2013_jpeg.npz
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import numpy as np

LOG = logging.getLogger("pack_fer2013")

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SPLITS = ("train", "validation")


def pack_split(split_dir: Path) -> dict[str, np.ndarray]:
    """Read every ``<class>/*.jpg`` below ``split_dir`` in a deterministic (sorted) order."""
    chunks: list[bytes] = []
    labels: list[int] = []
    names: list[str] = []
    for label, cls in enumerate(CLASSES):
        files = sorted((split_dir / cls).glob("*.jpg"))
        if not files:
            raise FileNotFoundError(f"no JPEG files in {split_dir / cls}")
        for f in files:
            chunks.append(f.read_bytes())
            labels.append(label)
            names.append(f"{cls}/{f.name}")
    sizes = np.array([len(c) for c in chunks], dtype=np.int64)
    offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    blob = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    return {
        "blob": blob,
        "offsets": offsets,
        "labels": np.asarray(labels, dtype=np.int64),
        "names": np.frombuffer("\n".join(names).encode(), dtype=np.uint8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/fer2013"),
                        help="folder holding train/<class>/*.jpg and validation/<class>/*.jpg")
    parser.add_argument("--out", type=Path, default=Path(".gpu/fer2013_jpeg.npz"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    arrays: dict[str, np.ndarray] = {"classes": np.asarray(CLASSES)}
    for split in SPLITS:
        packed = pack_split(args.data_dir / split)
        for key, value in packed.items():
            arrays[f"{split}_{key}"] = value
        LOG.info("%s: %d images, %.1f MB of JPEG", split, len(packed["labels"]), packed["blob"].size / 1e6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)  # uncompressed: JPEG does not compress further
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    LOG.info("wrote %s (%.1f MB, sha256 %s)", args.out, args.out.stat().st_size / 1e6, digest)


if __name__ == "__main__":
    main()
