"""Download MNIST or Fashion-MNIST from the official location, with a SHA-256 check.

Each file is streamed into a temporary file beside its destination and renamed into
place only after the SHA-256 of its decompressed content matches the catalogue; a bad
download is deleted, so a half-written or wrong file is never left where the loader
looks. Nothing downloads at import time. From a shell::

    python -m minidnn.data.download fashion-mnist [--dest DIR]
"""
from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from .catalog import ALL_FILES, DATASETS, dataset_info, user_cache_dir
from .datasets import verify_sha256
from .errors import DataError
from .idx import parse_idx, read_idx_bytes


def download(
    name: str,
    dest_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    *,
    force: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Fetch the four ``.gz`` files of data set ``name`` into ``dest_dir``; return the dir.

    ``dest_dir`` defaults to the user cache (``~/.cache/minidnn/NAME``) where the loaders
    look; ``base_url`` to the data set's official location. Files already present and
    valid are kept unless ``force``.
    """
    info = dataset_info(name)
    dest = Path(dest_dir).expanduser() if dest_dir is not None else user_cache_dir(info.name)
    base = base_url or info.url
    base = base if base.endswith("/") else base + "/"
    dest.mkdir(parents=True, exist_ok=True)
    for stem in ALL_FILES:
        target = dest / f"{stem}.gz"
        expected = info.sha256[stem]
        if target.is_file() and not force and _is_valid(target, expected):
            continue
        fetch_verified(f"{base}{stem}.gz", target, expected, timeout)
    return dest


def fetch_verified(url: str, target: Path, expected_sha256: str | None, timeout: float = 60.0) -> None:
    """Download ``url`` to ``target`` atomically, keeping it only if its content checks out."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, out)
            except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
                detail = exc.reason if type(exc) is urllib.error.URLError else exc
                raise DataError(f"could not download {url}: {detail}") from exc
        _check_content(Path(tmp), url, expected_sha256)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_content(path: Path, url: str, expected_sha256: str | None) -> None:
    """DataError naming ``url`` unless ``path`` is a valid IDX file with the expected hash."""
    try:
        content = read_idx_bytes(path)
        verify_sha256(content, url, expected_sha256)
        parse_idx(content, url)  # structure checked even where no hash is known (MNIST)
    except DataError as exc:
        raise DataError(f"download discarded: {exc}") from exc


def _is_valid(path: Path, expected_sha256: str | None) -> bool:
    try:
        _check_content(path, str(path), expected_sha256)
    except DataError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m minidnn.data.download NAME [--dest DIR] [--base-url URL]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidnn.data.download",
        description="Download a data set's four IDX files and check their SHA-256.",
    )
    parser.add_argument("name", choices=sorted(DATASETS), help="data set to download")
    parser.add_argument("--dest", help="target directory (default: ~/.cache/minidnn/NAME)")
    parser.add_argument("--base-url", help="where the .gz files are (default: the official location)")
    parser.add_argument("--force", action="store_true", help="download even files already present")
    args = parser.parse_args(argv)
    info = DATASETS[args.name]
    print(f"downloading {info.title} from {args.base_url or info.url}")
    try:
        dest = download(args.name, args.dest, args.base_url, force=args.force)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{info.title} is in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
