"""Pipeline throughput benchmark: messages written into Firestore until every one is synced into memory.

    .venv/bin/python scripts/bench_pipeline.py            # 1k and 10k messages over 100 conversations
    .venv/bin/python scripts/bench_pipeline.py --quick    # 1k messages (under 2 minutes)

For each size the API runs as a real subprocess (`uvicorn api.main:app`, the offline extractor,
all-MiniLM-L6-v2, Qdrant Edge in a temporary directory) against the Firestore emulator
(FIRESTORE_EMULATOR_HOST, or one started here), in a fresh `demo-bench-...` project. Writer threads put
the messages straight into Firestore, one WriteBatch per conversation chunk. Each size runs once per
trigger: `http`, the writers POST /firebase/message-created after each chunk, as the Cloud Function does in
production; then `listener`, the API's own on_snapshot listener, as `make run` does. On the emulator that
listener is expensive: with any collection-group listener open, the emulator re-runs its query over every
stored message at every commit (BENCHMARKS.md), a cost real Firestore does not have.
Throughput runs from the first write to the moment the API logs the commit of the last message (then
confirmed by a count aggregation in Firestore, which must see every message synced); a run stops writing
and waiting after --timeout seconds and reports what was synced by then. Batch latency (claim to commit) and
the time per stage come from the batch records' `timings_ms` in Firestore, outcomes from the
processor's log lines, peak RSS from the API's /proc/<pid>/status.

Progress goes to stderr; the figures are one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from scripts import firestore_emulator
from scripts.bench_common import clear_project, report
from scripts.bench_context import fill_template, summarize
from services.auth import new_key
from services.config import Settings
from services.container import build_firestore_client

REPO = Path(__file__).resolve().parent.parent
CONVERSATIONS = 100
WRITERS = 4
WRITE_ATTEMPTS = 6
STAGES = ("extract", "embed", "upsert", "commit")
RSS_LIMIT_MIB = 1536

# fmt: off
USER_LINES = (
    "My {rel} {name} works as a {job} in {place}.", "I work as a {job} in {place}.",
    "I love {hobby} on weekends.", "I'm planning a trip to {place} in {month}.",
    "I have a {pet} called {pet_name}, he is {age} years old.", "I can't stand {food}.",
    "My favourite food is {food}.", "I'm feeling {feeling} about {event}.",
    "I grew up in {place} but moved to {place2} for work.", "I'm learning {language} at the moment.",
    "My {rel} {name} and I went {hobby} last {day}.", "I have {event} on {day} and I'm {feeling}.",
    "Honestly I just want to sleep today.", "Haha yes, that's exactly it.", "Work was long today.",
)
ASSISTANT_LINES = (
    "That sounds lovely, tell me more!", "How did that make you feel?", "Oh nice, how long have you done that?",
    "I remember you mentioned something like that.", "That must be a lot to handle.",
    "What are you looking forward to most?", "Do you want some ideas for {hobby}?",
)
# fmt: on
_BATCH_LOG = re.compile(
    r"batch (\w+) (succeeded|failed|superseded): (\d+) messages, (\d+) memories, \d+ episodes, (\{[^}]*\})"
)


def progress(message: str) -> None:
    print(f"[bench_pipeline {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """The run could not go on; the message says what to do."""


# -- the API subprocess ------------------------------------------------------------------------


class Api:
    """`uvicorn api.main:app` in its own process group, logging to a file."""

    def __init__(
        self,
        host: str,
        project: str,
        qdrant_path: Path,
        threshold: int,
        log_path: Path,
        *,
        listener: bool,
        episodes: bool,
    ) -> None:
        self.port = firestore_emulator.free_port()
        self.log_path = log_path
        # Credentials for this run only: a development key (emulator) and the Cloud Function's secret.
        self._key, self._secret = new_key(), new_key()
        env = {
            **os.environ,
            "FIRESTORE_EMULATOR_HOST": host,
            "GOOGLE_CLOUD_PROJECT": project,
            "QDRANT_PATH": str(qdrant_path),
            "QDRANT_URL": "",
            "OPENAI_API_KEY": "",
            "LISTENER_ENABLED": "true" if listener else "false",
            "EPISODES_ENABLED": "true" if episodes else "false",
            "BATCH_THRESHOLD": str(threshold),
            "PORT": str(self.port),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "RECALL_DEV_API_KEY": self._key,
            "RECALL_TRIGGER_SECRET": self._secret,
        }
        command = [
            sys.executable,
            *("-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--log-level", "warning"),
        ]
        self._triggers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bench-trigger")
        self.trigger_errors: Counter[str] = Counter()
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = 240.0) -> float:
        """Seconds until /memory/health answers (the model is loaded by then)."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout_s:
            if self.process.poll() is not None:
                raise BenchError(f"the API exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/memory/health", timeout=5):
                    return time.perf_counter() - start
            except urllib.error.HTTPError:  # 503 (a component degraded) still means the app is up
                return time.perf_counter() - start
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise BenchError(f"the API did not answer within {timeout_s:.0f}s:\n{self.log_tail()}")

    def memory_mib(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak RSS) of the API process, in MiB."""
        values: dict[str, float] = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = round(int(rest.split()[0]) / 1024, 1)
        return values

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def outcomes(self) -> dict[str, Any]:
        """Batch outcomes as the processor logged them."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        found = _BATCH_LOG.findall(text)
        return {
            "batches": dict(Counter(status for _, status, _, _, _ in found)),
            "messages_succeeded": sum(int(n) for _, status, n, _, _ in found if status == "succeeded"),
            "memories_succeeded": sum(int(m) for _, status, _, m, _ in found if status == "succeeded"),
            "errors_logged": len(re.findall(r"\b(?:ERROR|Traceback)\b", text)),
        }

    def log_count(self, needle: str) -> int:
        return self.log_path.read_text(errors="replace").count(needle) if self.log_path.exists() else 0

    def logged_timings(self) -> dict[str, dict[str, float]]:
        """Stage timings of each batch, by batch id, from the processor's log lines."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return {batch_id: ast.literal_eval(timings) for batch_id, _, _, _, timings in _BATCH_LOG.findall(text)}

    def message_created(self, user_id: str, character_name: str) -> None:
        """What the Cloud Function forwards when a message is written, sent without blocking the writer."""
        self._triggers.submit(self._post_trigger, user_id, character_name)

    def _post_trigger(self, user_id: str, character_name: str) -> None:
        body = json.dumps({"user_id": user_id, "character_name": character_name}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/firebase/message-created",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._secret}"},
            method="POST",
        )
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except (urllib.error.URLError, OSError) as exc:
            self.trigger_errors[str(exc)[:80]] += 1

    def check_batch(self, user_id: str, character_name: str) -> None:
        url = f"http://127.0.0.1:{self.port}/memory/check-batch/{user_id}/{character_name}"
        with contextlib.suppress(urllib.error.URLError, OSError):
            request = urllib.request.Request(url, method="POST", headers={"Authorization": f"Bearer {self._key}"})
            urllib.request.urlopen(request, timeout=30).close()

    def stop(self) -> None:
        self._triggers.shutdown(wait=False, cancel_futures=True)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


# -- the writers -------------------------------------------------------------------------------


@dataclass
class Conversation:
    user_id: str
    character_name: str
    texts: list[tuple[str, str]]  # (role, text)


def conversations(total: int, rng: random.Random) -> list[Conversation]:
    per = total // CONVERSATIONS
    result = []
    for i in range(CONVERSATIONS):
        turns = [
            ("user", fill_template(rng.choice(USER_LINES), rng))
            if j % 2 == 0
            else ("assistant", fill_template(rng.choice(ASSISTANT_LINES), rng))
            for j in range(per)
        ]
        result.append(Conversation(f"bench-user-{i:03d}", rng.choice(("meher", "arjun")), turns))
    return result


class Writers:
    """Threads writing the conversations in chunks, interleaved across conversations like live traffic."""

    def __init__(
        self,
        client: firestore.Client,
        convs: Sequence[Conversation],
        chunk: int,
        threads: int,
        trigger: Callable[[str, str], None] | None,
        deadline: float,
    ) -> None:
        self._client = client
        self._trigger = trigger
        self._deadline = deadline
        self.written = 0
        self.failed = 0
        self.retries = 0
        self.retry_reasons: Counter[str] = Counter()
        self._convs = convs
        self._chunk = chunk
        self._threads = threads
        self.first_write = 0.0
        self.last_commit = 0.0
        self.commit_ms: list[float] = []
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        self.first_write = time.perf_counter()
        workers = [
            threading.Thread(target=self._write, args=(self._convs[i :: self._threads],), daemon=True)
            for i in range(self._threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.last_commit = time.perf_counter()
        if self.errors:
            raise BenchError(f"a writer failed: {self.errors[0]!r}") from self.errors[0]

    def _write(self, convs: Sequence[Conversation]) -> None:
        try:
            chunks = max(len(c.texts) for c in convs) // self._chunk
            for k in range(chunks):
                for conv in convs:
                    if time.perf_counter() > self._deadline:
                        return
                    self._commit(conv, conv.texts[k * self._chunk : (k + 1) * self._chunk])
        except BaseException as exc:  # reported by run(); a thread cannot raise into the main one
            with self._lock:
                self.errors.append(exc)

    def _commit(self, conv: Conversation, turns: Sequence[tuple[str, str]]) -> None:
        messages = (
            self._client.collection("users")
            .document(conv.user_id)
            .collection("characters")
            .document(conv.character_name)
            .collection("messages")
        )
        now = datetime.now(UTC)
        docs = [
            (messages.document(), {"role": role, "text": text, "channel": "whatsapp", "sync": False})
            for role, text in turns
        ]
        start = time.perf_counter()
        for attempt in range(WRITE_ATTEMPTS):
            # Fixed ids: a retry of a commit that did apply rewrites the same documents, adds none.
            batch = self._client.batch()
            for j, (ref, data) in enumerate(docs):
                batch.set(ref, {**data, "created_at": now + timedelta(microseconds=j)})
            try:
                batch.commit()
                break
            except gexc.GoogleAPIError as exc:
                # The emulator aborts a write that waits too long on a lock a batch transaction holds.
                with self._lock:
                    self.retries += 1
                    self.retry_reasons[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
                if attempt == WRITE_ATTEMPTS - 1:
                    with self._lock:
                        self.failed += len(docs)
                    return
                time.sleep(0.5 * 2**attempt)
        with self._lock:
            self.commit_ms.append((time.perf_counter() - start) * 1000)
            self.written += len(docs)
        if self._trigger is not None:  # one trigger per chunk: a Cloud Function's calls, coalesced
            self._trigger(conv.user_id, conv.character_name)


# -- one size ----------------------------------------------------------------------------------


def count_synced(client: firestore.Client) -> int:
    query: Any = client.collection_group("messages").where(filter=FieldFilter("sync", "==", True)).count(alias="n")
    return int(query.get()[0][0].value)


@dataclass
class SyncWait:
    done_at: float
    synced: int
    rss_sampled_mib: float
    retriggered: list[str]


def wait_synced(client: firestore.Client, api: Api, total: int, timeout_s: float, stall_s: float) -> SyncWait:
    """Wait until every message is synced (or the timeout). When nothing moves for `stall_s`, re-trigger
    the conversations still holding unsynced messages, as a Cloud Function retry would, and record them.

    Progress is followed in the API's log (a line per committed batch), not by counting synced messages in
    Firestore: on the emulator a collection-group count scans every document (170 ms of the emulator's CPU
    at 10k messages), and counting five times a second took about half a core from the system under test.
    Firestore has the last word: the run is complete only once a count there sees every message synced.
    """
    deadline = time.perf_counter() + timeout_s
    wait = SyncWait(0.0, 0, 0.0, [])
    last_report = last_change = last_count = time.perf_counter()
    while True:
        logged = api.outcomes()["messages_succeeded"]
        wait.rss_sampled_mib = max(wait.rss_sampled_mib, api.memory_mib().get("VmRSS", 0.0))
        now = time.perf_counter()
        if logged != wait.synced:
            wait.synced, last_change = logged, now
        if logged >= total or now - last_count > 10:  # the log says done (or, rarely, check it has not lied)
            synced, last_count = count_synced(client), time.perf_counter()
            if synced >= total:
                wait.done_at, wait.synced = now, synced
                return wait
        if api.process.poll() is not None:
            raise BenchError(f"the API exited with code {api.process.returncode}:\n{api.log_tail()}")
        if now >= deadline:
            wait.done_at, wait.synced = now, count_synced(client)
            progress(f"time limit reached with {wait.synced:,}/{total:,} synced")
            return wait
        if now - last_change > stall_s:
            stranded = unsynced_conversations(client)
            progress(f"no progress for {stall_s:.0f} s: re-triggering {len(stranded)} conversations: {stranded[:5]}")
            for user_id, character in stranded:
                api.check_batch(user_id, character)
                wait.retriggered.append(f"{user_id}/{character}")
            last_change = now
        if now - last_report > 5:
            progress(f"{logged:,}/{total:,} synced (as the API logged its batches)")
            last_report = now
        time.sleep(0.1)


def unsynced_conversations(client: firestore.Client) -> list[tuple[str, str]]:
    query = client.collection_group("messages").where(filter=FieldFilter("sync", "==", False)).select([])
    keys = {tuple(d.reference.path.split("/")[1:4:2]) for d in query.stream()}
    return sorted((u, c) for u, c in keys)


def batch_figures(client: firestore.Client, logged: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Latency and the time per stage of the succeeded batches.

    Claim time, finish time and extract/embed/upsert come from the batch records in Firestore; the commit
    stage only from the processor's log line (the record is written inside that commit). Latency runs from
    the claim to the commit, so it includes the wait for a free batch worker; `processing_ms` does not.
    """
    records = {d.id: d.to_dict() or {} for d in client.collection_group("batches").stream()}
    done = {k: r for k, r in records.items() if r.get("status") == "succeeded"}
    latency = [(r["finished_at"] - r["created_at"]).total_seconds() * 1000 for r in done.values()]
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for batch_id, record in done.items():
        timings = {**logged.get(batch_id, {}), **record.get("timings_ms", {})}
        timings.setdefault("commit", logged.get(batch_id, {}).get("commit", 0.0))
        for stage in STAGES:
            stages[stage].append(float(timings.get(stage, 0.0)))
    processing = [sum(v) for v in zip(*stages.values(), strict=True)]
    totals = {s: sum(v) for s, v in stages.items()}
    all_stages = sum(totals.values()) or 1.0
    return {
        "batches": dict(Counter(str(r.get("status")) for r in records.values())),
        "batches_with_logged_commit": sum(1 for k in done if "commit" in logged.get(k, {})),
        "messages_per_batch": summarize([float(len(r.get("message_ids", []))) for r in done.values()]),
        "memories_per_batch": summarize([float(r.get("memory_count", 0)) for r in done.values()]),
        "episodes_per_batch": summarize([float(r.get("episode_count", 0)) for r in done.values()]),
        "batch_latency_ms": summarize(latency),
        "batch_processing_ms": summarize(processing),
        "stage_ms": {s: summarize(v) for s, v in stages.items()},
        "stage_total_s": {s: round(t / 1000, 2) for s, t in totals.items()},
        "stage_share": {s: round(t / all_stages, 3) for s, t in totals.items()},
        "bounding_stage": max(totals, key=lambda s: totals[s]),
    }


def message_latency(client: firestore.Client) -> dict[str, float | int]:
    """Write to synced, per message (both clocks are this machine's)."""
    docs = client.collection_group("messages").select(["created_at", "synced_at"]).stream()
    samples = []
    for doc in docs:
        data = doc.to_dict() or {}
        if data.get("synced_at") and data.get("created_at"):
            samples.append((data["synced_at"] - data["created_at"]).total_seconds() * 1000)
    return summarize(samples)


def run_size(
    total: int,
    trigger_kind: str,
    episodes: bool,
    args: argparse.Namespace,
    host: str,
    tmp: Path,
    stack: contextlib.ExitStack,
) -> dict[str, Any]:
    per = total // CONVERSATIONS
    threshold = args.threshold or min(25, per)
    chunk = min(args.chunk, per)
    project = f"demo-bench-pipeline-{uuid.uuid4().hex[:8]}"
    stack.callback(lambda: clear_project(host, project))
    settings = Settings(_env_file=None, google_cloud_project=project, firestore_emulator_host=host)
    client = build_firestore_client(settings)
    stack.callback(client.close)

    listener = trigger_kind == "listener"
    name = f"{total}-{trigger_kind}-{'episodes' if episodes else 'no-episodes'}"
    progress(f"{name}: starting the API (project {project}, threshold {threshold})")
    qdrant_path = tmp / f"qdrant-{name}"
    api = Api(host, project, qdrant_path, threshold, tmp / f"api-{name}.log", listener=listener, episodes=episodes)
    stack.callback(api.stop)
    stack.callback(lambda: shutil.rmtree(qdrant_path, ignore_errors=True))
    startup_s = api.wait_ready()
    rss_ready = api.memory_mib()
    progress(f"API ready in {startup_s:.1f} s, RSS {rss_ready.get('VmRSS')} MiB; writing with {WRITERS} threads")

    deadline = time.perf_counter() + args.timeout
    trigger = api.message_created if trigger_kind == "http" else None
    convs = conversations(total, random.Random(args.seed))
    writers = Writers(client, convs, chunk, WRITERS, trigger, deadline)
    writers.run()
    write_s = writers.last_commit - writers.first_write
    written = writers.written
    progress(f"wrote {written:,} messages in {write_s:.1f} s ({written / write_s:.0f}/s); waiting for sync")
    started = writers.first_write
    if trigger_kind == "drain":  # everything is written: trigger every conversation now, time the processing only
        started = time.perf_counter()
        for conv in convs:
            api.message_created(conv.user_id, conv.character_name)
    wait = wait_synced(client, api, written, max(0.0, deadline - time.perf_counter()), args.stall)
    elapsed = wait.done_at - started
    memory = api.memory_mib()
    progress(f"{wait.synced:,}/{total:,} synced in {elapsed:.1f} s: {wait.synced / elapsed:.0f} messages/s")

    figures: dict[str, Any] = {
        "messages": total,
        "trigger": trigger_kind,
        "episodes": episodes,
        "conversations": CONVERSATIONS,
        "completed": wait.synced >= total,
        "written": written,
        "synced": wait.synced,
        "time_limit_s": args.timeout,
        "threshold": threshold,
        "write_chunk": chunk,
        "writer_threads": WRITERS,
        "end_to_end_s": round(elapsed, 2),
        "timed_from": "the trigger of every conversation" if trigger_kind == "drain" else "the first write",
        "messages_per_s": round(wait.synced / elapsed, 1),
        "write_s": round(write_s, 2),
        "writes_per_s": round(written / write_s, 1),
        "write_commit_ms": summarize(writers.commit_ms),
        "write_retries": writers.retries,
        "write_retry_reasons": dict(writers.retry_reasons),
        "writes_failed_after_retries": writers.failed,
        "api_startup_s": round(startup_s, 1),
        "api_rss_mib_ready": rss_ready.get("VmRSS"),
        "api_rss_mib_sampled_max": wait.rss_sampled_mib,
        "api_peak_rss_mib": memory.get("VmHWM"),
        "api_peak_rss_under_1_5gb": (memory.get("VmHWM") or 0) < RSS_LIMIT_MIB,
        **batch_figures(client, api.logged_timings()),
        "message_write_to_synced_ms": message_latency(client),
        "processor_log": api.outcomes(),
        "listener_trigger_failures_logged": api.log_count("listener trigger for"),
        "retriggered_after_stall": wait.retriggered,
        "http_trigger_errors": dict(api.trigger_errors),
    }
    api.stop()
    return figures


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sorted(args.sizes or ([1_000] if args.quick else [1_000, 10_000]))
    for size in sizes:
        if size % CONVERSATIONS:
            raise BenchError(f"--sizes must be multiples of {CONVERSATIONS} (messages spread over conversations)")
    start = time.perf_counter()
    results = []
    with contextlib.ExitStack() as stack:
        with contextlib.redirect_stdout(sys.stderr):
            host = stack.enter_context(firestore_emulator.ensure_running())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="recall-bench-pipeline-")))
        for trigger_kind in args.trigger:
            for size in sizes:
                for episodes in {"on": (True,), "off": (False,), "both": (True, False)}[args.episodes]:
                    with contextlib.ExitStack() as per_size:
                        results.append(run_size(size, trigger_kind, episodes, args, host, tmp, per_size))
    return {
        "benchmark": "pipeline",
        "mode": "quick" if args.quick else "default",
        "extractor": "offline",
        "embedder": "all-MiniLM-L6-v2",
        "vector_store": "qdrant-edge",
        "runs": results,
        "targets": {
            f"{r['trigger']}_{r['messages']}{'' if r['episodes'] else '_no_episodes'}": {
                "completed": r["completed"],
                "messages_per_s": r["messages_per_s"],
                "at_least_200_per_s": r["messages_per_s"] >= 200,
                "bounding_stage": r["bounding_stage"],
                "api_peak_rss_mib": r["api_peak_rss_mib"],
                "api_peak_rss_under_1_5gb": r["api_peak_rss_under_1_5gb"],
            }
            for r in results
        },
        "elapsed_s": round(time.perf_counter() - start, 1),
    }


TRIGGERS = ("http", "listener", "drain")


def triggers(value: str) -> list[str]:
    kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in TRIGGERS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(TRIGGERS)}; got {value!r}")
    return kinds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1k messages only (< 2 minutes)")
    parser.add_argument("--sizes", type=int, nargs="+", help="message counts, multiples of 100")
    parser.add_argument(
        "--trigger",
        type=triggers,
        help="comma-separated, run in that order. http: the writers POST /firebase/message-created after each "
        "chunk, as the Cloud Function does in production; listener: the API's on_snapshot listener (make run); "
        "drain: write everything with no trigger, then trigger every conversation and time the processing "
        "alone (default: http,listener)",
        default="http,listener",
    )
    parser.add_argument(
        "--episodes",
        choices=("on", "off", "both"),
        default="on",
        help="EPISODES_ENABLED for the API: on (the default product), off (extracted memories only), or both, "
        "one after the other, for the side-by-side cost of episodes",
    )
    parser.add_argument("--chunk", type=int, default=25, help="messages per WriteBatch per conversation")
    parser.add_argument(
        "--threshold", type=int, help="BATCH_THRESHOLD for the API (default: 25, or fewer when a conversation is short)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=480.0,
        help="seconds from the first write after which a run stops writing and waiting, and reports what synced",
    )
    parser.add_argument(
        "--stall", type=float, default=10.0, help="seconds without progress before re-triggering stranded conversations"
    )
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report(lambda: run(args), cleaned="the API, the emulator and temporary files", final_errors=(BenchError,))


if __name__ == "__main__":
    sys.exit(main())
