"""``coreml-chat-convert``: Hugging Face Mistral/Llama (Hub id, folder or .gguf) → Core ML model folder.

With ``--json-progress`` stdout carries only JSON lines (see ``converter.progress``) and logs go to
stderr; otherwise a one-line progress bar is drawn on stderr. SIGINT and SIGTERM cancel cleanly:
the partial output is removed and the exit code is 130.
"""

from __future__ import annotations

import logging
import signal
import sys
import time

from converter.errors import ConversionError
from converter.options import ConversionRequest, build_parser
from converter.output_folder import is_disk_full
from converter.progress import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CancelToken,
    ConversionCancelled,
    ProgressEvent,
)
from engine.runtime.coremltools_import import quiet_missing_coreml_bindings

logger = logging.getLogger("converter")


class ProgressPrinter:
    """JSON lines on stdout, or a single redrawn progress line on stderr."""

    def __init__(self, *, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, event: ProgressEvent) -> None:
        if self.json_lines:
            print(event.to_json(), flush=True)
            return
        if event.event == "progress":
            width = 30
            filled = int(event.overall * width)
            bar = "█" * filled + "·" * (width - filled)
            elapsed = time.monotonic() - self.started
            line = (
                f"\r{bar} {event.overall:4.0%}  {event.stage:<8} {event.stage_fraction:4.0%}  "
                f"{elapsed:5.0f}s  {event.message[:40]:<40}"
            )
            sys.stderr.write(line)
            sys.stderr.flush()
            self.drawn = True
        elif event.event == "log":
            self.end_line()
            sys.stderr.write(f"{event.message}\n")

    def end_line(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False

    def final(self, event: ProgressEvent) -> None:
        if self.json_lines:
            print(event.to_json(), flush=True)
        else:
            self.end_line()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("coremltools", "transformers", "huggingface_hub", "torch"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    quiet_missing_coreml_bindings()  # also when a caller turns coremltools' warnings back on
    printer = ProgressPrinter(json_lines=args.json_progress)
    cancel = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        cancel.cancel_from_signal()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        from converter.convert import convert

        request = ConversionRequest.from_args(args)
        result = convert(request, progress=printer, cancel=cancel)
    except ConversionCancelled:
        printer.final(ProgressEvent(event="cancelled", message="conversion cancelled"))
        sys.stderr.write("cancelled: nothing was written\n")
        return EXIT_CANCELLED
    except ConversionError as error:
        printer.final(ProgressEvent(event="error", message=str(error)))
        sys.stderr.write(f"error: {error}\n")
        return EXIT_ERROR
    except MemoryError:
        message = "out of memory: close other apps or convert a smaller model"
        printer.final(ProgressEvent(event="error", message=message))
        sys.stderr.write(f"error: {message}\n")
        return EXIT_ERROR
    except Exception as error:  # a bug: still one clear line, the details on stderr
        if is_disk_full(error):
            message = "the disk filled up while converting; free some space and try again"
            printer.final(ProgressEvent(event="error", message=message))
            sys.stderr.write(f"error: {message}\n")
            return EXIT_ERROR
        logger.exception("conversion failed unexpectedly")
        message = f"conversion failed unexpectedly: {type(error).__name__}: {error}"
        printer.final(ProgressEvent(event="error", message=message.splitlines()[0]))
        return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    verification = result.verification
    printer.final(
        ProgressEvent(
            event="done",
            overall=1.0,
            output=str(result.output_dir),
            verification=verification.to_dict() if verification else None,
            message=f"converted in {result.seconds:.0f}s",
        )
    )
    sys.stderr.write(f"wrote {result.output_dir} in {result.seconds:.0f}s\n")
    if verification is not None and not verification.passed:
        sys.stderr.write(
            f"error: verification failed: top-1 agreement {verification.top1_agreement:.0%} "
            f"(max |logit difference| {verification.max_abs_difference:.3f}); the package was kept "
            "for inspection\n"
        )
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
