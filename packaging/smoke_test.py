"""Smoke test of the frozen build (``make package`` runs it after PyInstaller).

1. The frozen executable's ``--convert`` converts the demo GGUF (SmolLM2-135M-Instruct) with
   ``--json-progress``: the Converter pane's path inside the .app, with torch and coremltools frozen.
   The converter's default for a GGUF, its own blocks imported exactly: the demo as ``make run``
   ships it, whose answer the tests check. (Re-quantized to int4 the 135M model no longer names
   Paris: one greedy answer is no measure of a 4-bit 135M model; README, "int4 from
   full-precision sources".)
2. The frozen executable's ``--self-test`` loads that conversion headless and must answer "Paris".
3. The frozen executable's ``--doctor --no-demo --model <the conversion>`` (short prompt and decode
   lengths) measures it in its own probe processes (``--doctor-probe``): every row must be ok. On
   a Mac that is Core ML on each compute unit against the reference runtime, from the frozen app;
   elsewhere the reference runtime's rows.

Prints one JSON object: the bundle's size, its largest parts, and the steps' results; exits
non-zero if a step fails.

    .venv/bin/python packaging/smoke_test.py [dist/coreml-chat]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def executable(bundle: Path) -> Path:
    """The frozen program: inside the .app on macOS, at the top of the folder elsewhere."""
    candidates = [bundle / "coreml-chat", bundle / "Contents" / "MacOS" / "coreml-chat"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit(f"error: no frozen executable in {bundle}; run `make package` first")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def largest_parts(bundle: Path, count: int = 6) -> dict[str, float]:
    """MB of the biggest top-level entries of the bundle's library folder."""
    places = (bundle / "_internal", bundle / "Contents" / "Frameworks")
    internal = next((p for p in places if p.is_dir()), bundle)
    sizes = {
        child.name: folder_bytes(child) if child.is_dir() else child.stat().st_size
        for child in internal.iterdir()
    }
    ranked = sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:count]
    return {name: round(size / 1e6, 1) for name, size in ranked}


def run(command: list[str], *, timeout: float) -> tuple[int, str, str, float]:
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    bundle = Path(args[0] if args else REPO / "dist" / "coreml-chat").resolve()
    program = executable(bundle)
    from converter.demo_model import fetch_demo_gguf

    gguf = fetch_demo_gguf()
    report: dict[str, object] = {
        "bundle": str(bundle),
        "bundle_mb": round(folder_bytes(bundle) / 1e6, 1),
        "largest_parts_mb": largest_parts(bundle),
    }
    with tempfile.TemporaryDirectory(prefix="frozen-smoke-") as scratch:
        output = Path(scratch) / "SmolLM2-exact"
        code, stdout, stderr, seconds = run(
            [str(program), "--convert", str(gguf), "-o", str(output),
             "--context-length", "512", "--json-progress"],
            timeout=1800,
        )  # fmt: skip
        events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        last = events[-1] if events else {}
        report["convert"] = {
            "exit_code": code,
            "seconds": round(seconds, 1),
            "events": len(events),
            "last_event": last.get("event"),
            "overall": last.get("overall"),
        }
        if code != 0 or last.get("event") != "done" or not output.is_dir():
            report["convert"]["stderr"] = stderr[-1500:]
            print(json.dumps({"ok": False, **report}, indent=2))
            return 1
        code, stdout, stderr, seconds = run(
            [str(program), "--self-test", "--model", str(output)], timeout=900
        )
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        self_test = json.loads(lines[-1]) if lines else {"ok": False, "stderr": stderr[-1500:]}
        report["self_test"] = {"exit_code": code, "seconds": round(seconds, 1), **self_test}
        doctor_json = Path(scratch) / "doctor-report.json"
        doctor_code, _, stderr, seconds = run(
            [str(program), "--doctor", "--no-demo", "--model", str(output),
             "--json", str(doctor_json), "--prompt-tokens", "64", "--decode-depth", "128",
             "--decode-tokens", "8", "--fidelity-tokens", "64"],
            timeout=1800,
        )  # fmt: skip
        doctor = json.loads(doctor_json.read_text()) if doctor_json.is_file() else {}
        report["doctor"] = {
            "exit_code": doctor_code,
            "seconds": round(seconds, 1),
            "ok": bool(doctor.get("ok")),
            "summary": doctor_json.with_suffix(".txt").read_text().splitlines()
            if doctor_json.is_file()
            else stderr[-1500:],
        }
    ok = code == 0 and bool(report["self_test"].get("ok")) and report["doctor"]["ok"]
    print(json.dumps({"ok": ok, **report}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
