from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest
import tiktoken
from tiktoken_ext import openai_public

from scripts import provision_tiktoken
from services import tokens
from services.errors import ConfigurationError
from services.tokens import count_tokens, encoding_source, truncate_to_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]
ENCODINGS = ["o200k_base", "cl100k_base"]
MIXED_TEXT = "Hello 👋🏽 world — naïve café, 日本語のテキスト, family 👨\u200d👩\u200d👧\u200d👦, नमस्ते. End."


@pytest.fixture(scope="module", autouse=True)
def cache_dir() -> Path:
    directory = tokens.cache_dir()
    provision_tiktoken.provision(directory, ENCODINGS, log=lambda _: None)
    return directory


class _LoaderCalled(Exception):
    def __init__(self, url: str, expected_hash: str | None) -> None:
        self.url = url
        self.expected_hash = expected_hash


def tiktoken_expectation(name: str) -> tuple[str, str | None]:
    """What tiktoken's own constructor asks its loader for: the URL and the expected sha256."""

    def capture(url: str, expected_hash: str | None = None) -> NoReturn:
        raise _LoaderCalled(url, expected_hash)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(_LoaderCalled) as called:
        patch.setattr(openai_public, "load_tiktoken_bpe", capture)
        openai_public.ENCODING_CONSTRUCTORS[name]()
    return called.value.url, called.value.expected_hash


def fresh_encoding(name: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tiktoken.Encoding:
    """An Encoding built straight from tiktoken's constructor, bypassing both caches."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    return tiktoken.Encoding(**openai_public.ENCODING_CONSTRUCTORS[name]())


def run_python(code: str, env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("name", [*ENCODINGS, "o200k_harmony"])
def test_encoding_source_is_what_tiktoken_asks_for(name: str) -> None:
    url, expected_hash = tiktoken_expectation(name)

    source = encoding_source(name)

    assert (source.url, source.sha256) == (url, expected_hash)
    assert source.file_name == hashlib.sha1(url.encode()).hexdigest()


@pytest.mark.parametrize("name", ENCODINGS)
def test_provisioned_file_has_tiktokens_expected_sha256(name: str, cache_dir: Path) -> None:
    url, expected_hash = tiktoken_expectation(name)
    path = cache_dir / hashlib.sha1(url.encode()).hexdigest()

    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected_hash


def test_provisioning_again_is_a_no_op_without_npm(cache_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no npm on this PATH: a fetch would fail
    script = REPO_ROOT / "scripts" / "provision_tiktoken.py"

    result = subprocess.run(
        [sys.executable, str(script), "--cache-dir", str(cache_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "o200k_base: already provisioned, sha256 ok" in result.stdout
    assert "cl100k_base: already provisioned, sha256 ok" in result.stdout
    assert "fetching" not in result.stdout


@pytest.mark.parametrize("name", ENCODINGS)
def test_empty_text_has_no_tokens(name: str) -> None:
    assert count_tokens("", name) == 0


@pytest.mark.parametrize("name", ENCODINGS)
def test_count_matches_a_freshly_loaded_encoding(name: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = fresh_encoding(name, cache_dir, monkeypatch)

    for text in ["hello world", MIXED_TEXT]:
        assert count_tokens(text, name) == len(fresh.encode(text))
    assert count_tokens("hello world", name) == 2


def test_o200k_is_the_default_and_cheaper_than_cl100k_on_non_english_text() -> None:
    text = "Привет, как у тебя дела сегодня? 今日はとても良い天気ですね。"

    o200k, cl100k = count_tokens(text, "o200k_base"), count_tokens(text, "cl100k_base")

    assert count_tokens(text) == o200k
    assert 0 < o200k < cl100k
    assert cl100k < len(text.encode())


def test_special_token_text_counts_as_plain_text() -> None:
    assert count_tokens("<|endoftext|>") > 1


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("text", [MIXED_TEXT, "🧪🦀🫠", "e\u0301\u0327 combining", "\u00a0\t\n  spaces"])
def test_unicode_round_trips(name: str, text: str) -> None:
    enc = tokens.get_encoding(name)

    assert enc.decode(enc.encode_ordinary(text)) == text


@pytest.mark.parametrize("name", ENCODINGS)
def test_truncation_is_a_prefix_within_budget_for_every_budget(name: str) -> None:
    total = count_tokens(MIXED_TEXT, name)
    previous = ""

    for budget in range(total + 2):
        cut = truncate_to_tokens(MIXED_TEXT, budget, name)

        assert MIXED_TEXT.startswith(cut)
        assert count_tokens(cut, name) <= budget
        assert "\ufffd" not in cut
        assert len(cut) >= len(previous)
        previous = cut
    assert truncate_to_tokens(MIXED_TEXT, total, name) == MIXED_TEXT
    assert truncate_to_tokens(MIXED_TEXT, total - 1, name) != MIXED_TEXT


def test_some_token_boundary_falls_inside_a_character() -> None:
    # Guards the test above: it must meet a cut that splits a multi-byte character.
    enc = tokens.get_encoding("o200k_base")
    ids = enc.encode_ordinary(MIXED_TEXT)
    prefixes = [enc.decode_bytes(ids[:keep]) for keep in range(len(ids))]

    assert any(not _is_utf8(prefix) for prefix in prefixes)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_truncation_cuts_at_token_boundaries() -> None:
    assert truncate_to_tokens("one two three four five six", 3) == "one two three"
    assert truncate_to_tokens("one two three", 0) == ""
    assert truncate_to_tokens("short", 100) == "short"


def test_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        truncate_to_tokens("text", -1)


def test_unknown_encoding_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="nope_base"):
        count_tokens("x", "nope_base")


@pytest.mark.parametrize("content, reason", [(None, "is missing"), (b"not ranks\n", "has sha256")])
def test_unprovisioned_cache_fails_fast_and_says_what_to_do(tmp_path: Path, content: bytes | None, reason: str) -> None:
    if content is not None:
        encoding_source("o200k_base").path(tmp_path).write_bytes(content)
    # A dead proxy: if a regression let tiktoken reach for the network, it fails instead of hanging.
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9"}

    started = time.monotonic()
    result = run_python("from services.tokens import count_tokens; count_tokens('hello')", env)
    elapsed = time.monotonic() - started

    assert result.returncode != 0
    assert "ConfigurationError: tiktoken encoding o200k_base is not provisioned in" in result.stderr
    assert str(tmp_path) in result.stderr
    assert reason in result.stderr
    assert "python scripts/provision_tiktoken.py" in result.stderr
    assert elapsed < 5


def test_importing_the_module_loads_nothing() -> None:
    env = {key: value for key, value in os.environ.items() if key != "TIKTOKEN_CACHE_DIR"}
    code = (
        "import os, sys; import services.tokens; "
        "assert not {'tiktoken', 'tiktoken_ext.openai_public'} & set(sys.modules), sorted(sys.modules); "
        "assert 'TIKTOKEN_CACHE_DIR' not in os.environ"
    )

    result = run_python(code, env)

    assert result.returncode == 0, result.stderr


def test_cache_dir_defaults_to_the_repo_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")

    assert tokens.cache_dir() == REPO_ROOT / ".cache" / "tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(REPO_ROOT / ".cache" / "tiktoken")


def test_empty_cache_dir_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")

    with pytest.raises(ConfigurationError, match="TIKTOKEN_CACHE_DIR is empty"):
        tokens.cache_dir()
