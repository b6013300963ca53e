"""Start Google's official Firestore emulator on a free loopback port and wait until it answers.

    python -m scripts.firestore_emulator [--port 8080]     # runs until Ctrl-C

Used by `make run` (when FIRESTORE_EMULATOR_HOST is not set) and by the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


class EmulatorError(RuntimeError):
    pass


def emulator_command() -> list[str]:
    """The emulator's launcher, found from the gcloud SDK; an EmulatorError says what to install."""
    roots = [os.environ.get("CLOUDSDK_ROOT_DIR", ""), "/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(str(Path(gcloud).resolve().parent.parent))
    for root in filter(None, roots):
        script = Path(root) / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
        if script.exists():
            return [str(script), "start"]
    if gcloud:
        return [gcloud, "emulators", "firestore", "start", "--quiet"]
    raise EmulatorError(
        "the Firestore emulator was not found: install the Google Cloud SDK with its "
        "cloud-firestore-emulator component (gcloud components install cloud-firestore-emulator, or the "
        "google-cloud-cli-firestore-emulator package) and Java 11+, or set FIRESTORE_EMULATOR_HOST"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(host: str, timeout_s: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmulatorError(f"the Firestore emulator exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise EmulatorError(f"the Firestore emulator at {host} did not answer within {timeout_s:.0f}s")


def start(port: int | None = None, log_path: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start an emulator; returns the process and its host:port once it answers."""
    port = port or free_port()
    command = emulator_command()
    if command[0].endswith("cloud_firestore_emulator"):
        command += ["--host=127.0.0.1", f"--port={port}"]
    else:
        command += [f"--host-port=127.0.0.1:{port}"]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    host = f"127.0.0.1:{port}"
    try:
        wait_ready(host, process=process)
    except EmulatorError:
        stop(process)
        raise
    return process, host


def stop(process: subprocess.Popen[bytes]) -> None:
    # The launcher starts java as a child: end the whole process group.
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)


def clear(host: str, project: str) -> None:
    """Delete every document in the emulator's default database for `project`."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10):
        pass


@contextlib.contextmanager
def ensure_running() -> Iterator[str]:
    """FIRESTORE_EMULATOR_HOST if it is set; else an emulator started here (on FIRESTORE_EMULATOR_PORT if set),
    exported in the environment for this process, and stopped on exit."""
    existing = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if existing:
        yield existing
        return
    print("starting the Firestore emulator…", flush=True)
    port = os.environ.get("FIRESTORE_EMULATOR_PORT")
    process, host = start(int(port) if port else None)
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    print(f"Firestore emulator at {host}", flush=True)
    try:
        yield host
    finally:
        stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    try:
        process, host = start(args.port)
    except EmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Firestore emulator ready: export FIRESTORE_EMULATOR_HOST={host}", flush=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
