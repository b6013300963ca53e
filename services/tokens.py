"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files on first use; Recall never lets it. `scripts/provision_tiktoken.py`
writes them into `TIKTOKEN_CACHE_DIR` (default `<repo>/.cache/tiktoken`), and `get_encoding` refuses
to load an encoding whose file is missing or wrong there, because tiktoken would then go to the network
(without a timeout) instead of failing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.errors import ConfigurationError

if TYPE_CHECKING:
    import tiktoken

DEFAULT_ENCODING = "o200k_base"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "tiktoken"
PROVISION_HINT = "run `make install` (or python scripts/provision_tiktoken.py)"

_CONSTRUCTORS_MODULE = "tiktoken_ext.openai_public"
_LOADER = "load_tiktoken_bpe"


@dataclass(frozen=True)
class EncodingSource:
    """Where tiktoken fetches an encoding's BPE file from, and the sha256 it insists on."""

    name: str
    url: str
    sha256: str

    @property
    def file_name(self) -> str:
        """The name tiktoken gives the file in its cache dir: the sha1 of the URL."""
        return hashlib.sha1(self.url.encode(), usedforsecurity=False).hexdigest()

    def path(self, cache_dir: Path) -> Path:
        """The file tiktoken reads for this encoding from `cache_dir`."""
        return cache_dir / self.file_name

    def problem(self, cache_dir: Path) -> str | None:
        """Why tiktoken would not accept the file in `cache_dir` (None when it would)."""
        path = self.path(cache_dir)
        if not path.is_file():
            return f"{path} is missing"
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != self.sha256:
            return f"{path} has sha256 {actual}, expected {self.sha256}"
        return None


@functools.cache
def encoding_source(name: str) -> EncodingSource:
    """Read the URL and expected sha256 of `name` from tiktoken's own constructor, without running it."""
    module = importlib.import_module(_CONSTRUCTORS_MODULE)
    constructor = getattr(module, "ENCODING_CONSTRUCTORS", {}).get(name)
    found = _loader_arguments(module, constructor) if constructor else None
    if found is None:
        raise ConfigurationError(
            f"tiktoken encoding {name} is not one that Recall can provision offline "
            f"(it needs an encoding loaded by {_CONSTRUCTORS_MODULE}.{_LOADER}, e.g. o200k_base)"
        )
    url, sha256 = found
    return EncodingSource(name=name, url=url, sha256=sha256)


def _loader_arguments(module: Any, function: Callable[..., Any], depth: int = 0) -> tuple[str, str] | None:
    """The literal (url, expected_hash) `function` passes to the loader, following calls like
    o200k_harmony -> o200k_base through the same module."""
    tree = ast.parse(inspect.getsource(function))
    calls = [
        (node, node.func.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    for call, called in calls:
        if called == _LOADER:
            return _literal_arguments(call)
    for _, called in calls:
        callee = getattr(module, called, None)
        if depth < 3 and inspect.isfunction(callee) and callee.__module__ == module.__name__:
            found = _loader_arguments(module, callee, depth + 1)
            if found:
                return found
    return None


def _literal_arguments(call: ast.Call) -> tuple[str, str] | None:
    url = call.args[0] if call.args else None
    sha = next((kw.value for kw in call.keywords if kw.arg == "expected_hash"), None)
    url_value = url.value if isinstance(url, ast.Constant) else None
    sha_value = sha.value if isinstance(sha, ast.Constant) else None
    if isinstance(url_value, str) and isinstance(sha_value, str):
        return url_value, sha_value
    return None


def cache_dir() -> Path:
    """tiktoken's cache dir; points `TIKTOKEN_CACHE_DIR` at `<repo>/.cache/tiktoken` when it is unset."""
    value = os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(DEFAULT_CACHE_DIR))
    if not value:
        # An empty value turns tiktoken's cache off: every load would be a download.
        raise ConfigurationError(f"TIKTOKEN_CACHE_DIR is empty; unset it or point it at {DEFAULT_CACHE_DIR}")
    return Path(value)


@functools.cache
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, loaded only from the provisioned cache dir."""
    directory = cache_dir()
    problem = encoding_source(name).problem(directory)
    if problem:
        raise ConfigurationError(
            f"tiktoken encoding {name} is not provisioned in {directory} ({problem}): {PROVISION_HINT}"
        )
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = DEFAULT_ENCODING) -> int:
    """How many tokens `text` takes; special-token strings such as <|endoftext|> count as plain text."""
    return len(get_encoding(encoding).encode_ordinary(text))


def truncate_to_tokens(text: str, max_tokens: int, encoding: str = DEFAULT_ENCODING) -> str:
    """The longest prefix of `text` cut at a token boundary that fits in `max_tokens`; `text` if it fits."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    enc = get_encoding(encoding)
    tokens = enc.encode_ordinary(text)
    if len(tokens) <= max_tokens:
        return text
    for keep in range(max_tokens, 0, -1):
        # A token may end inside a multi-byte character: drop that partial character, and re-count
        # because the shorter text can tokenize differently at its end.
        prefix = enc.decode_bytes(tokens[:keep]).decode("utf-8", errors="ignore")
        if len(enc.encode_ordinary(prefix)) <= max_tokens:
            return prefix
    return ""
