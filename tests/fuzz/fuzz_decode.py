"""Atheris fuzz target: ``facewise.core.imageio.decode_bytes`` must answer any bytes with an image or an ImageError.

Run: ``python tests/fuzz/fuzz_decode.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (libFuzzer flags).
Any other exception, a hang past libFuzzer's timeout or memory past ``-rss_limit_mb`` is a finding.
"""

from __future__ import annotations

import sys

import atheris
import numpy  # noqa: F401  (imported before instrumentation: only the decoders are instrumented)

# Instrumenting all of Pillow takes ~15 s: only the decoders an upload reaches (uploads.IMAGE_FORMATS) and ours.
PLUGINS = ["PIL.PngImagePlugin", "PIL.GifImagePlugin", "PIL.JpegImagePlugin", "PIL.BmpImagePlugin",
           "PIL.TiffImagePlugin", "PIL.WebPImagePlugin", "PIL.PpmImagePlugin"]
OURS = ["PIL.Image", "PIL.ImageFile", "PIL.ImageOps", *PLUGINS, "facewise.core.imageio"]
with atheris.instrument_imports(include=OURS):
    import importlib

    for plugin in PLUGINS:
        importlib.import_module(plugin)
    from facewise.core.imageio import decode_bytes
    from facewise.errors import ImageError

LIMIT = 4_000_000  # pixels: the fuzzer must find bugs, not allocate gigabytes


def test_one_input(data: bytes) -> None:
    try:
        img = decode_bytes(data, "fuzz", limit=LIMIT)
    except ImageError:
        return
    assert img.pixels.ndim == 3 and img.pixels.shape[2] == 3 and img.pixels.dtype.name == "uint8"


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
