"""Turn a pytest-benchmark JSON file into a Markdown table of medians and recorded ratios.

Usage: python bench/summarize.py results.json > results.md
"""
from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw", "?")
    print(f"Machine: {cpu}, {info.get('cpu', {}).get('count', '?')} logical CPUs, "
          f"Python {info.get('python_version', '?')}; run {data.get('datetime', '?')}\n")
    print("| benchmark | median | ratios and extra info |")
    print("|---|---|---|")
    for b in data["benchmarks"]:
        med = b["stats"]["median"]
        unit = f"{med * 1e3:.3f} ms" if med < 1 else f"{med:.3f} s"
        extra = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in b.get("extra_info", {}).items()
            if not isinstance(v, dict)
        )
        print(f"| {b['fullname'].split('::', 1)[-1]} | {unit} | {extra} |")


if __name__ == "__main__":
    main(sys.argv[1])
