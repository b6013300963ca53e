"""Provision tiktoken's BPE files offline, from the ranks shipped in the npm package js-tiktoken.

    python scripts/provision_tiktoken.py [--cache-dir DIR] [--encodings o200k_base cl100k_base]

tiktoken fetches e.g. https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken on
first use and caches it as `$TIKTOKEN_CACHE_DIR/<sha1 of the URL>`. js-tiktoken carries the same ranks
in `dist/ranks/<name>.js`; this script rebuilds the `.tiktoken` text from them, checks it against the
sha256 tiktoken itself expects, and writes it where tiktoken looks. Files already in place with the
right sha256 are left alone, without calling npm.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # run as a script, scripts/ is on the path but not the repo

from services.errors import ConfigurationError  # noqa: E402
from services.tokens import EncodingSource, encoding_source  # noqa: E402

JS_TIKTOKEN_VERSION = "1.0.21"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "tiktoken"
NPM_CACHE_DIR = REPO_ROOT / ".cache" / "npm"
DEFAULT_ENCODINGS = ("o200k_base", "cl100k_base")
NPM_TIMEOUT_SECONDS = 300

Log = Callable[[str], None]


class ProvisionError(Exception):
    """Provisioning cannot finish; the message says what to do."""


def provision(
    cache_dir: Path = DEFAULT_CACHE_DIR,
    encodings: Iterable[str] = DEFAULT_ENCODINGS,
    *,
    npm_cache_dir: Path = NPM_CACHE_DIR,
    log: Log = print,
) -> list[Path]:
    """Make sure tiktoken finds each encoding's file in `cache_dir`; return the files' paths."""
    sources = [_source(name) for name in encodings]
    missing = [source for source in sources if source.problem(cache_dir) is not None]
    for source in sources:
        if source not in missing:
            log(f"{source.name}: already provisioned, sha256 ok → {source.path(cache_dir)}")
    if missing:
        tarball = fetch_package(npm_cache_dir, log)
        for source in missing:
            data, count = convert_ranks(read_ranks_module(tarball, source))
            _verify(source, data)
            write_atomically(source.path(cache_dir), data)
            log(f"{source.name}: {count} ranks, sha256 ok → {source.path(cache_dir)}")
    return [source.path(cache_dir) for source in sources]


def _source(name: str) -> EncodingSource:
    try:
        return encoding_source(name)
    except ConfigurationError as exc:
        raise ProvisionError(str(exc)) from exc


def fetch_package(npm_cache_dir: Path, log: Log = print) -> Path:
    """The js-tiktoken tarball, fetched with `npm pack` unless a previous run kept it."""
    tarball = npm_cache_dir / f"js-tiktoken-{JS_TIKTOKEN_VERSION}.tgz"
    if tarball.is_file():
        log(f"using {tarball}")
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise ProvisionError("npm not found: install Node.js and npm (e.g. `apt-get install nodejs npm`)")
    log(f"fetching js-tiktoken@{JS_TIKTOKEN_VERSION} from npm…")
    npm_cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=npm_cache_dir) as workdir:
        _npm_pack(npm, Path(workdir))
        # Renamed into place only once complete, so an interrupted fetch is never mistaken for a cache hit.
        os.replace(Path(workdir) / tarball.name, tarball)
    return tarball


def _npm_pack(npm: str, workdir: Path) -> None:
    command = [npm, "pack", f"js-tiktoken@{JS_TIKTOKEN_VERSION}", "--silent"]
    try:
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ProvisionError(f"`npm pack` took over {NPM_TIMEOUT_SECONDS}s: check access to the registry") from exc
    if result.returncode != 0 or not (workdir / f"js-tiktoken-{JS_TIKTOKEN_VERSION}.tgz").is_file():
        detail = (result.stderr or result.stdout).strip()[-2000:]
        raise ProvisionError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{detail}")


def read_ranks_module(tarball: Path, source: EncodingSource) -> str:
    """The text of `dist/ranks/<file>.js` for `source`, read from the tarball without extracting to disk."""
    # p50k_edit and o200k_harmony reuse another encoding's file: name the module after the URL's file.
    stem = PurePosixPath(urlparse(source.url).path).stem
    member_name = f"package/dist/ranks/{stem}.js"
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            member = archive.getmember(member_name)
            stream = archive.extractfile(member) if member.isfile() else None
            if stream is None:
                raise ProvisionError(f"{member_name} in {tarball} is not a regular file")
            return stream.read().decode("utf-8")
    except KeyError as exc:
        raise ProvisionError(f"js-tiktoken {JS_TIKTOKEN_VERSION} has no {member_name}") from exc
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ProvisionError(f"cannot read {tarball} ({exc}): delete it and rerun") from exc


def convert_ranks(module_text: str) -> tuple[bytes, int]:
    """Turn js-tiktoken's ranks into `.tiktoken` text; return it and the number of ranks.

    The module is `export default {"pat_str": ..., "special_tokens": ..., "bpe_ranks": "..."}` where
    bpe_ranks holds lines `! <first rank> <base64 token> <base64 token> ...`, ranks counting up from
    the first. tiktoken's format is one `<base64 token> <rank>` line per token, in rank order.
    """
    try:
        payload = json.loads(module_text[module_text.index("{") : module_text.rindex("}") + 1])
        lines = payload["bpe_ranks"].split("\n")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProvisionError(f"js-tiktoken's ranks module has an unexpected layout: {exc}") from exc
    ranks: dict[int, str] = {}
    for line in filter(None, lines):
        try:
            _, first, *tokens = line.split(" ")
            ranks.update((int(first) + offset, token) for offset, token in enumerate(tokens))
        except ValueError as exc:
            raise ProvisionError(f"js-tiktoken's ranks line {line[:60]!r}… is malformed: {exc}") from exc
    text = "".join(f"{ranks[rank]} {rank}\n" for rank in sorted(ranks))
    return text.encode("ascii"), len(ranks)


def _verify(source: EncodingSource, data: bytes) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != source.sha256:
        raise ProvisionError(
            f"{source.name}: sha256 of the ranks converted from js-tiktoken@{JS_TIKTOKEN_VERSION} is {actual}, "
            f"tiktoken expects {source.sha256}; nothing was written. "
            f"Pin a js-tiktoken version whose ranks match this tiktoken."
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        try:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
            os.fchmod(tmp.fileno(), 0o644)  # NamedTemporaryFile creates 0600; tiktoken may run as another user
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    os.replace(tmp.name, path)


def self_check(cache_dir: Path, encodings: Iterable[str], log: Log = print) -> None:
    """Load each encoding through tiktoken itself, from `cache_dir`, and encode a sample."""
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    import tiktoken

    for name in encodings:
        count = len(tiktoken.get_encoding(name).encode("hello world"))
        log(f"{name}: self-check ok, tiktoken encodes 'hello world' as {count} tokens")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="tiktoken cache dir")
    parser.add_argument("--encodings", nargs="+", default=list(DEFAULT_ENCODINGS), metavar="NAME")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir.resolve()
    started = time.monotonic()
    try:
        provision(cache_dir, args.encodings)
    except ProvisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    self_check(cache_dir, args.encodings)
    print(f"done in {time.monotonic() - started:.1f}s; set TIKTOKEN_CACHE_DIR={cache_dir} to use it elsewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
