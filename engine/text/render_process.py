"""Chat templates rendered in a child process that can be killed: Stop and the time limit always win.

The sandbox (``template_sandbox``) checks its budget between Python steps. A template can make one
C call last minutes while holding the GIL (``{{ ns.d }}`` of a list that holds itself 2**40 times,
``tojson`` of the same with dicts, ``wordwrap(1)`` of 16 MB of words): in the engine process that
call would also stop the thread that reads Stop from the app, and the server's threads. So the
engine renders in ``RenderProcess``, one long-lived child (``python -m engine.text.render_process``,
or the frozen app's ``--render-templates``) that runs the same bounded sandbox, and:

- the engine waits for the answer without holding the GIL, looking at the cancel event every
  ``POLL_SECONDS``: Stop kills the child at once (SIGKILL), the render ends with
  ``ChatTemplateCancelled``;
- a render still running ``GRACE_SECONDS`` after the sandbox's own time limit is killed the same
  way and ends with ``ChatTemplateError`` (one line);
- the OS bounds the child on its own, in case the engine is gone: address space ``MEMORY_BYTES``
  (``RLIMIT_AS``, where the OS enforces it: Linux; macOS does not) and CPU time (``RLIMIT_CPU``,
  reset before each render to the time it may take: SIGXCPU ends it);
- the child ends when its input closes (the engine is gone).

A killed child is started again at the next render (about 0.15 s, once). A normal render costs one
pipe round trip more than rendering in process: SmolLM2's template over a 20-message chat, 1.0 ms
against 0.6 ms per turn (two renders), measured in one run on a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from engine.exit_status import describe_exit
from engine.text import template_sandbox
from engine.text.chat_template import (
    ChatTemplateCancelled,
    ChatTemplateError,
    current_cancel,
    render_chat_template,
)
from engine.text.template_sandbox import RenderLimits

logger = logging.getLogger(__name__)

RENDER_FLAG = "--render-templates"  # app/main.py dispatches it in the frozen app
GRACE_SECONDS = 1.0  # past the sandbox's own time limit, before the child is killed
STARTUP_SECONDS = 60.0  # a child that is not ready by then (a very loaded machine) is an error
POLL_SECONDS = 0.05  # how often a waiting render looks at the cancel event
MEMORY_BYTES = 2 * 1024**3  # the child's address space (RLIMIT_AS)
_READY = b'{"ready": true}\n'


def render_command(*, executable: str | None = None, frozen: bool | None = None) -> list[str]:
    """``[python, -m, engine.text.render_process]``, or the frozen app's ``[executable, flag]``."""
    executable = executable or sys.executable
    frozen = getattr(sys, "frozen", False) if frozen is None else frozen
    return [executable, RENDER_FLAG] if frozen else [executable, "-m", __name__]


class RenderProcess:
    """``render(template, messages, ...)`` as ``render_chat_template``, in a killable child.

    Thread-safe (one render at a time); ``close()`` ends the child. Raises ``ChatTemplateError``
    (one line) when the template fails, goes past a limit or the child cannot run, and
    ``ChatTemplateCancelled`` when ``cancel`` (default: ``rendering_cancelled_by``'s) is set.
    """

    def __init__(
        self,
        *,
        command: list[str] | None = None,
        grace: float = GRACE_SECONDS,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        self._command = command or render_command()
        self._grace = grace
        self._memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._popen: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.started = 0  # children started so far (the first, and one after each kill)

    def render(
        self,
        template: str,
        messages: list[dict[str, str]],
        *,
        add_generation_prompt: bool = True,
        special_tokens: dict[str, str] | None = None,
        cancel: threading.Event | None = None,
        limits: RenderLimits | None = None,
        tools: list[dict[str, Any]] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> str:
        limits = limits or template_sandbox.DEFAULT_LIMITS
        cancel = cancel or current_cancel()
        request = {
            "template": template,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "special_tokens": special_tokens or {},
            "limits": dataclasses.asdict(limits),
            "tools": tools,
            "variables": dict(variables or {}),
        }
        data = (json.dumps(request) + "\n").encode()  # ASCII: lone surrogates travel escaped
        with self._lock:
            popen = self._ready(cancel)
            try:
                assert popen.stdin is not None
                popen.stdin.write(data)
                popen.stdin.flush()
            except OSError as error:
                self._kill()
                raise ChatTemplateError(
                    f"the chat template renderer stopped before rendering: {error}"
                ) from error
            deadline = time.monotonic() + limits.seconds + self._grace
            line = self._read_line(cancel, deadline, limits.seconds)
        answer = json.loads(line)
        if "text" in answer:
            return str(answer["text"])
        if answer.get("cancelled"):
            raise ChatTemplateCancelled(str(answer.get("error", "")))
        raise ChatTemplateError(str(answer.get("error", "the chat template failed")))

    def close(self) -> None:
        with self._lock:
            if self._popen is not None and self._popen.poll() is None:
                assert self._popen.stdin is not None
                try:
                    self._popen.stdin.close()
                    self._popen.wait(timeout=1.0)
                except (OSError, subprocess.TimeoutExpired):
                    self._kill()
            self._popen = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    # --- under the lock ------------------------------------------------------------------------

    def _ready(self, cancel: threading.Event | None) -> subprocess.Popen[bytes]:
        if self._popen is not None and self._popen.poll() is None:
            return self._popen
        self._popen = subprocess.Popen(
            [*self._command, str(self._memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = b""
        self.started += 1
        logger.debug("chat template renderer %d started", self._popen.pid)
        line = self._read_line(cancel, time.monotonic() + STARTUP_SECONDS, None)
        if line != _READY:
            self._kill()
            raise ChatTemplateError(
                f"the chat template renderer did not start: expected {_READY!r}, found {line[:80]!r}"
            )
        return self._popen

    def _read_line(
        self, cancel: threading.Event | None, deadline: float, seconds: float | None
    ) -> bytes:
        """The child's next line, waiting without the GIL; kills it on Stop or past ``deadline``."""
        popen = self._popen
        assert popen is not None and popen.stdout is not None
        descriptor = popen.stdout.fileno()
        while b"\n" not in self._buffer:
            if cancel is not None and cancel.is_set():
                self._kill()
                raise ChatTemplateCancelled("rendering the chat template was cancelled")
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                if seconds is None:
                    raise ChatTemplateError(
                        f"the chat template renderer did not start within {STARTUP_SECONDS:g} s"
                    )
                raise ChatTemplateError(
                    f"the chat template took longer than {seconds:g} s to render (it was stopped)"
                )
            readable, _, _ = select.select([descriptor], [], [], min(POLL_SECONDS, left))
            if not readable:
                continue
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                how = describe_exit(popen.wait())
                self._popen = None
                raise ChatTemplateError(
                    "the chat template went past the renderer's memory or time limit "
                    f"(the render process ended: {how})"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def _kill(self) -> None:
        popen, self._popen = self._popen, None
        if popen is None:
            return
        popen.kill()
        popen.wait()
        for stream in (popen.stdin, popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        logger.info("chat template renderer %d stopped", popen.pid)


_shared: RenderProcess | None = None
_shared_lock = threading.Lock()


def render_isolated(template: str, messages: list[dict[str, str]], **options: Any) -> str:
    """``render_chat_template`` in this process's one shared ``RenderProcess`` (started when first
    needed, ended with the process)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = RenderProcess()
            atexit.register(_shared.close)
        renderer = _shared
    return renderer.render(template, messages, **options)


# --- the child ---------------------------------------------------------------------------------


def _limit_self(memory_bytes: int) -> None:
    """Address space (where the OS enforces it) and no core files; CPU is set per render."""
    import resource

    for kind, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_CORE, 0)):
        try:
            _, hard = resource.getrlimit(kind)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(kind, (value, hard))
        except (ValueError, OSError) as error:  # macOS refuses some: the engine's kill remains
            logger.debug("render process: cannot set limit %s: %s", kind, error)


def _limit_cpu(seconds: float) -> None:
    """CPU time for the next render (used so far + what it may take): SIGXCPU ends it after."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(spent + 2 * seconds + GRACE_SECONDS + 2)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError) as error:
        logger.debug("render process: cannot set the CPU limit: %s", error)


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    limits = RenderLimits(**request["limits"])
    _limit_cpu(limits.seconds)
    try:
        text = render_chat_template(
            request["template"],
            request["messages"],
            add_generation_prompt=request["add_generation_prompt"],
            special_tokens=request["special_tokens"],
            limits=limits,
            tools=request.get("tools"),
            variables=request.get("variables"),
        )
    except ChatTemplateCancelled as error:
        return {"error": str(error), "cancelled": True}
    except ChatTemplateError as error:
        return {"error": str(error)}
    return {"text": text}


def main(argv: list[str] | None = None) -> int:
    """The child: requests in on stdin, answers out on stdout, one JSON line each."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=os.environ.get("COREML_CHAT_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    _limit_self(int(args[0]) if args and args[0].isdigit() else MEMORY_BYTES)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # nothing else may write into the answers
    out.write(_READY)
    for line in iter(sys.stdin.buffer.readline, b""):
        out_of_memory = False
        try:
            answer = _answer(json.loads(line))
        except MemoryError:
            out_of_memory = True
            answer = {"error": "the chat template used more memory than the renderer allows"}
        except (ValueError, KeyError, TypeError) as error:
            answer = {"error": f"the chat template renderer got a bad request: {error}"}
        out.write((json.dumps(answer) + "\n").encode())
        if out_of_memory:
            return 0  # the engine starts a fresh child for the next render
    return 0


if __name__ == "__main__":
    sys.exit(main())
