"""Turn unpacked Debian wallpaper packages into a folder of small photos for the ``photos`` data option.

Usage: ``python recipes/prepare_photos.py UNPACKED_ROOT OUT_DIR [--short-side 256]``

``UNPACKED_ROOT`` is where ``dpkg-deb -x`` unpacked ``gnome-backgrounds``, ``mate-backgrounds`` and
``plasma-workspace-wallpapers`` (see ``recipes/train_shipped.sh``). Every raster image is converted to
RGB, resized once so its short side is ``--short-side`` pixels (so that training reads small files),
and written as ``OUT_DIR/<package folder>_<name>.jpg``. Plasma ships each wallpaper at several sizes:
only the largest file of each ``images/`` or ``images_dark/`` folder is kept, and its ``screenshot``
previews are skipped. Nothing here is imported by the library: it reads whatever folder it is given.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from PIL import Image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def _pixels(path: Path) -> int:
    m = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    if m:
        return int(m.group(1)) * int(m.group(2))
    with Image.open(path) as im:
        return im.width * im.height


def pick(root: Path) -> list[Path]:
    """One file per distinct picture under ``root``: the largest of each plasma size folder, all others."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS)
    files = [p for p in files if p.stem != "screenshot"]
    sized: dict[Path, list[Path]] = {}
    chosen: list[Path] = []
    for p in files:
        if re.fullmatch(r"\d+x\d+", p.stem):  # plasma: wallpapers/<Name>/contents/images*/WxH.ext
            sized.setdefault(p.parent, []).append(p)
        else:  # mate: Elephants.jpg, Elephants_3840x2160.jpg, ... are one picture
            sized.setdefault(p.parent / re.sub(r"_\d+x\d+$", "", p.stem), []).append(p)
    chosen += [max(group, key=_pixels) for group in sized.values()]
    return sorted(chosen)


def out_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    if re.fullmatch(r"\d+x\d+", path.stem):  # <Name>/contents/images_dark -> Name_dark
        name = rel.parts[-4] + ("_dark" if path.parent.name.endswith("dark") else "")
    else:
        name = rel.parent.name + "_" + re.sub(r"_\d+x\d+$", "", path.stem)
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name) + ".jpg"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--short-side", type=int, default=256)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    Image.MAX_IMAGE_PIXELS = None  # trusted Debian files up to 5640x3172
    n = 0
    for src in pick(args.root):
        dst = args.out / out_name(src, args.root)
        if dst.exists():
            continue
        with Image.open(src) as im:
            scale = args.short_side / min(im.size)
            im.draft("RGB", (round(im.width * scale), round(im.height * scale)))  # JPEG: decode at a reduced size
            im = im.convert("RGB")
            scale = args.short_side / min(im.size)
            if scale < 1:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
            im.save(dst, quality=95)
        n += 1
    print(f"{n} photos written to {args.out} ({len(list(args.out.glob('*.jpg')))} in all)")


if __name__ == "__main__":
    main()
