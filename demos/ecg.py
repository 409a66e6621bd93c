"""ECG: per-step heartbeat-wave classification on QTDB, learned online record after record.

QTDB as preprocessed by Yin et al. 2021 (the HYPR paper's ECG task): 4 spike channels (level
crossings of two leads), 6 wave classes per step. Records are concatenated into one stream with
a boundary at each record's start; the learner predicts each step before it learns from it.

    hypr-stream demo ecg [--short] [--data ../shared/data/qtdb] [--records N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _demo
import numpy as np


def write_stream(data: Path, out: Path, records: int) -> tuple[Path, float]:
    """The first ``records`` training records as one stream (.npz); also the majority-class
    rate, the accuracy a constant guess would get."""
    import scipy.io

    mat = scipy.io.loadmat(data / "QTDB_train.mat")
    x = mat["x"][:records].astype(np.float32)  # [N, 1301, 4] in {-1, 0, 1}
    y = mat["y"][:records].argmax(-1).astype(np.int64)  # [N, 1301]
    n, steps, _ = x.shape
    x = np.concatenate([x == 1, x == -1], axis=-1).astype(np.float32)  # up/down spike channels
    boundary = np.zeros((n, steps), bool)
    boundary[:, 0] = True
    path = out / "qtdb_train.npz"
    np.savez(path, x=x.reshape(n * steps, -1), y=y.reshape(-1), mask=np.ones(n * steps, bool),
             boundary=boundary.reshape(-1))
    return path, float(np.bincount(y.reshape(-1)).max() / y.size)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true", help="a few records (for the tests)")
    p.add_argument("--data", default=str(_demo.DATA / "qtdb"), help="folder with QTDB_train.mat")
    p.add_argument("--records", type=int, default=None, help="records to stream (default 618)")
    p.add_argument("--out", default="runs/demo-ecg", help="checkpoint, metrics, plots")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = p.parse_args(argv)
    data = Path(args.data)
    if not (data / "QTDB_train.mat").is_file():
        _demo.skip(f"no QTDB_train.mat in {data} (pass --data)")
    try:
        import scipy.io  # noqa: F401
    except ImportError:
        _demo.skip("scipy is needed to read .mat files (pip install scipy)")
    records = args.records or (12 if args.short else 618)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path, majority = write_stream(data, out, records)
    result = _demo.run("ecg", out, [f"source.uri=file:{path}", *args.set])
    result.update(demo="ecg", records=records, chance=majority)
    _demo.finish(result)
    return result


if __name__ == "__main__":
    main()
