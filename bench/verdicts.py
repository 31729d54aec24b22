"""What makes a run fail (problems) and what makes its figures doubtful (notes)."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def problems(results: JSON) -> list[str]:
    """Everything that makes the run fail: target failures, request errors, crashed workers, streams not opened."""
    found = [f"{name}: {reason}" for name, reason in results["failed"].items()]
    for name, res in results["targets"].items():
        for key, cell in res["cells"].items():
            if cell["total_errors"] or cell.get("worker_crashes"):
                found.append(
                    f"{name} {key}: {cell['total_errors']} errors {cell['error_samples'][:2]}"
                    f" {cell.get('worker_crashes', [])[:2]}"
                )
        found += [f"{name} {mode}: {check['error']}" for mode, check in res["checks"].items() if "error" in check]
        held = res["open_streams"]
        if held is not None and held["ready"] < held["streams"]:
            found.append(f"{name}: only {held['ready']} of {held['streams']} slow streams delivered a first token")
    return found


def notes(results: JSON) -> list[str]:
    """Caveats: cells where other processes used the CPU, or the driver core was close to saturation."""
    found = []
    for name, res in results["targets"].items():
        for key, cell in res["cells"].items():
            if cell["other_processes_cpu_util"] > 0.15:
                found.append(
                    f"{name} {key}: other processes used {cell['other_processes_cpu_util']:.2f} of a core "
                    "meanwhile: the figure is disturbed"
                )
            driver = cell["loadgen_cpu_util"] + cell["upstream_cpu_util"]
            if driver > 0.85 and cell["target_cpu_util"] < 0.9:
                found.append(
                    f"{name} {key}: driver core busy ({driver:.2f}) while the target used "
                    f"{cell['target_cpu_util']:.2f} of its core: the figure may be driver-bound"
                )
    return found
