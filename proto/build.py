"""Regenerate the Python code of proto/*.proto: `python -m proto.build`."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def build(out_root: Path = ROOT) -> list[Path]:
    """Write <out_root>/proto/<name>_pb2.py(i) for every .proto here."""
    include = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(HERE.glob("*.proto"))
    (out_root / "proto").mkdir(parents=True, exist_ok=True)
    # -I at the repo root, so the generated modules live in the `proto` package
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        *[str(source.relative_to(ROOT)) for source in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return [out_root / "proto" / f"{source.stem}_pb2.py" for source in sources]


if __name__ == "__main__":
    for path in build():
        sys.stdout.write(f"wrote {path}\n")
