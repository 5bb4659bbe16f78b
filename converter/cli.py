"""``coreml-chat-convert``: Hugging Face Mistral/Llama (Hub id, folder or .gguf) → Core ML model folder.

With ``--json-progress`` stdout carries only JSON lines (see ``converter.progress``) and logs go to
stderr; otherwise a one-line progress bar is drawn on stderr. SIGINT and SIGTERM cancel cleanly:
the partial output is removed and the exit code is 130.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from converter.errors import ConversionError
from converter.progress import (
    EXIT_CANCELLED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CancelToken,
    ConversionCancelled,
    ProgressEvent,
)

logger = logging.getLogger("converter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coreml-chat-convert",
        description="Convert a Hugging Face Mistral or Llama model into a stateful Core ML model folder.",
    )
    parser.add_argument("source", help="Hub model id, local Hugging Face folder, or .gguf file")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="the model folder to create"
    )
    parser.add_argument("--context-length", type=int, default=2048, help="default 2048")
    parser.add_argument(
        "--quantize",
        choices=("auto", "exact", "int4", "int8", "none"),
        default="auto",
        help="auto (default): exact for a .gguf source (its own quantized blocks), int4 otherwise",
    )
    parser.add_argument("--block-size", type=int, default=32, help="int4 block size (default 32)")
    parser.add_argument(
        "--last-logits-only",
        action="store_true",
        help="logits of the last position only: (1, 1, vocab)",
    )
    parser.add_argument("--verify", action="store_true", help="run the package against torch")
    parser.add_argument("--json-progress", action="store_true", help="JSON lines on stdout")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--token", default=None, help="Hugging Face access token (gated models)")
    parser.add_argument("--name", default=None, help="package name (default: the model's name)")
    return parser


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
    printer = ProgressPrinter(json_lines=args.json_progress)
    cancel = CancelToken()

    def on_signal(signum: int, _frame: object) -> None:
        cancel.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        from converter.convert import ConversionOptions, convert

        options = ConversionOptions(
            context_length=args.context_length,
            quantize=args.quantize,
            block_size=args.block_size,
            last_logits_only=args.last_logits_only,
            verify=args.verify,
            force=args.force,
            token=args.token,
            name=args.name,
        )
        result = convert(args.source, args.output, options, progress=printer, cancel=cancel)
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
