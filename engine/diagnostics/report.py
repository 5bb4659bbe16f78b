"""The doctor's report: its schema's name and the readable summary of a report.

The JSON itself is plain data (README, "Running on a Mac for the first time", documents every
field); the summary is what a person pastes into a bug report: one line per fact, one per runtime
and compute unit, each saying what was measured or why not.
"""

from __future__ import annotations

from typing import Any

REPORT_SCHEMA = "coreml-chat-doctor/1"


def _size(value: Any) -> str:
    return f"{value / 1e9:.2f} GB" if isinstance(value, int | float) else "n/a"


def _row_line(row: dict[str, Any]) -> str:
    name = "reference" if row["runtime"] == "reference" else f"coreml {row['compute_units']}"
    if row["status"] != "ok":
        return f"  {name:<20} {row['status']}: {row.get('error', '')}".rstrip()
    parts = []
    if row["runtime"] == "coreml":
        compiled = "cached" if row.get("compiled_before") else "compiled"
        parts.append(f"first load {row['first_load_seconds']:.1f} s ({compiled})")
        if "warm_load_seconds" in row:
            parts.append(f"warm {row['warm_load_seconds']:.1f} s")
    else:
        parts.append(f"load {row['first_load_seconds']:.1f} s")
    if row.get("footprint_after_load_bytes"):
        ratio = row.get("footprint_vs_package")
        parts.append(
            f"footprint {_size(row['footprint_after_load_bytes'])}"
            + (f" ({ratio:.2f}x the package)" if ratio else "")
        )
    agreement = row.get("agreement")
    if agreement:
        parts.append(
            f"top-1 {agreement['top1_agreement']:.1%}, KL {agreement['mean_kl']:.2g}, "
            f"max |dlogit| {agreement['max_abs_logit_difference']:.3g}"
        )
    if "prompt" in row:
        parts.append(
            f"prompt {row['prompt']['tokens_per_second']:.1f} tok/s @{row['prompt']['tokens']}"
        )
        parts += [f"decode {d['tokens_per_second']:.1f} tok/s @{d['depth']}" for d in row["decode"]]
    return f"  {name:<20} " + "; ".join(parts)


def summary_text(report: dict[str, Any]) -> str:
    """The report as text: the machine, then each model and its rows."""
    env = report["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    cache = env["compiled_cache"]
    lines = [
        f"coreml-chat doctor ({report['schema']}, {report['created']}): "
        + ("all measured rows ok" if report.get("ok") else "PROBLEMS FOUND"),
        f"system: {env['system']} {env['macos_version'] or env['release']} on {env['machine']}, "
        f"{env['chip']}, {_size(env['memory_bytes'])} memory, {env['cpu_count']} CPUs",
        f"python {env['python']}{' (frozen app)' if env['frozen'] else ''}; {packages}",
        f"coremltools native library: {env['coremltools_native_library'] or 'missing'}; "
        "Core ML for stateful models: "
        + ("yes" if env["coreml_available"] else "no (macOS 15+ only)")
        + (
            " [Core ML rows from the test stand-in]"
            if report.get("coreml_measured") and not env["coreml_available"]
            else ""
        ),
        f"compiled cache: {cache['path']} ({len(cache['copies'])} copies, {_size(cache['bytes'])})",
    ]
    for model in report["models"]:
        lines.append("")
        if model["status"] != "ok":
            lines.append(f"{model['role']}: {model['status']}: {model.get('error', '')}")
            continue
        lines.append(
            f"{model['role']}: {model['name']} ({model['quantization']}, package "
            f"{_size(model['package_bytes'])}, float16 weights "
            f"~{_size(model['float16_weight_bytes_estimate'])})"
            f" at {model['folder']}"
        )
        lines += [_row_line(row) for row in model["rows"]]
    lines.append("")
    lines.append(f"took {report.get('seconds', 0):.0f} s")
    return "\n".join(lines) + "\n"
