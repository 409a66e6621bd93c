"""Shared by the demos: run a config through the `hypr-stream run` loop into an output folder,
print the result as the last line of stdout (JSON), or skip with a printed reason."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hypr_stream import cli
from hypr_stream import config as cfg

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def run(config_name: str, out: str | Path, overrides: list[str]) -> dict[str, Any]:
    """Run configs/{config_name}.yaml with ``overrides``; checkpoint, metrics and plots go
    to ``out``. A fresh run (an old checkpoint there is replaced and its metrics file emptied)
    unless the overrides set ``checkpoint.resume=true``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = load(config_name, out, overrides)
    except cfg.ConfigError as err:
        print(f"config error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    if not config.checkpoint.resume and config.output.metrics_jsonl:
        Path(config.output.metrics_jsonl).unlink(missing_ok=True)
    return cli.run(config)


def load(config_name: str, out: Path, overrides: list[str]) -> cfg.RunConfig:
    return cfg.load(ROOT / "configs" / f"{config_name}.yaml", [
        f"checkpoint.path={out / 'checkpoint.pt'}", "checkpoint.resume=false",
        f"output.metrics_jsonl={out / 'metrics.jsonl'}", f"output.plots={out / 'plots'}",
        *overrides])


def finish(result: dict[str, Any]) -> None:
    """Print the result: a readable line on stderr, JSON as the last line of stdout."""
    acc = result.get("accuracy")
    if acc is not None:
        cli.log(f"final accuracy {acc:.1%} (chance {result.get('chance', 0):.1%}) over "
                f"{result.get('steps', 0):,} steps")
    print(json.dumps(result), flush=True)


def skip(reason: str) -> None:
    """Exit 0 with the reason printed (data not present on this machine)."""
    print(f"skipped: {reason}", file=sys.stderr, flush=True)
    print(json.dumps({"skipped": reason}), flush=True)
    sys.exit(0)
