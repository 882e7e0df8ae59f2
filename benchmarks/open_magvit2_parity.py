"""Open-MAGVIT2 import at release size: their code vs the converted magvit2 model, random weights.

The tests check parity on small models (32 base channels); this script builds the released
architectures (128 base channels, 4 residual blocks, 2^18 codes) with random weights, converts
their state dicts and reports index agreement and the largest reconstruction difference::

    nice -n 19 python benchmarks/open_magvit2_parity.py [--size 64] [--frames 5] [--seed-voken CHECKOUT] [--write FILE]

``--size`` and ``--frames`` set the input (the weights are full size either way; the released
models were trained at 128x128, 256x256 and 17x128x128).

The image models come from the ``open-magvit2`` wheel; the video model from a SEED-Voken checkout
(``src/Open_MAGVIT2/modules/diffusionmodules/improved_video_model.py``), when one is given.
Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from magvit2.tokenizer.convert import LAYOUTS, from_open_magvit2


def _randomise_norms(*modules: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in (x for mod in modules for x in mod.modules()):
            if isinstance(m, torch.nn.GroupNorm) and m.affine:
                m.weight.add_(0.2 * torch.randn_like(m.weight))
                m.bias.add_(0.2 * torch.randn_like(m.bias))


@torch.no_grad()
def compare(encoder_cls, decoder_cls, name: str, layout: str, video_shape: tuple[int, ...], bits: int = 18) -> dict:
    from open_magvit2.taming.modules.vqvae.lookup_free_quantize import LFQ

    torch.manual_seed(0)
    dd = dict(ch=128, out_ch=3, in_channels=3, num_res_blocks=4, z_channels=bits, ch_mult=list(LAYOUTS[layout]),
              resolution=video_shape[-1])
    enc, dec = encoder_cls(**dd).eval(), decoder_cls(**dd).eval()
    _randomise_norms(enc, dec)
    quantize = LFQ(dim=bits, codebook_size=2**bits).eval()
    state = {**{f"encoder.{k}": v for k, v in enc.state_dict().items()},
             **{f"decoder.{k}": v for k, v in dec.state_dict().items()}}
    tok = from_open_magvit2(state, ema=False)
    x = torch.rand(*video_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = enc(x)
    quant, _, idx = quantize(z)
    rec = dec(quant)
    ours_in = x if x.ndim == 5 else x[:, :, None]
    ours = tok.encode(ours_in)
    ours_rec = tok.decode(ours)
    ours_rec = ours_rec if x.ndim == 5 else ours_rec[:, :, 0]
    return {"model": name, "input": "x".join(map(str, video_shape[2:])), "tokens": "x".join(map(str, ours.shape[1:])),
            "params": sum(p.numel() for p in tok.parameters()),
            "indices_equal": bool(torch.equal(ours.flatten(), idx.flatten())),
            "max_abs": float((ours_rec - rec).abs().max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed-voken", default=None, help="SEED-Voken checkout, for the video tokenizer")
    ap.add_argument("--size", type=int, default=64, help="image and frame height/width (multiple of 16)")
    ap.add_argument("--frames", type=int, default=5, help="video frames (1 + 4k)")
    ap.add_argument("--write", default=None, help="append the table to this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from open_magvit2.taming.modules.diffusionmodules.improved_model import Decoder, Encoder

    s = args.size
    rows = [compare(Encoder, Decoder, "image 128", "128", (1, 3, s, s)),
            compare(Encoder, Decoder, "image 256", "256", (1, 3, s, s))]
    if args.seed_voken:
        path = Path(args.seed_voken) / "src/Open_MAGVIT2/modules/diffusionmodules/improved_video_model.py"
        spec = importlib.util.spec_from_file_location("seed_voken_improved_video_model", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        rows.append(compare(mod.Encoder, mod.Decoder, "video", "128", (1, 3, args.frames, s, s)))
    lines = ["| model | input | tokens | parameters | indices equal | max abs recon diff |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['input']} | {r['tokens']} | {r['params'] / 1e6:.1f}M | {r['indices_equal']} | "
              f"{r['max_abs']:.1e} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n## Open-MAGVIT2 import at release size (`benchmarks/open_magvit2_parity.py`)\n\n"
                    "Random weights in the released architectures (128 base channels, 4 blocks, 2^18 codes), "
                    f"their code vs the converted model, fp32 on CPU, one thread, batch 1, {s}x{s} inputs"
                    f"{f' ({args.frames} frames for the video model)' if args.seed_voken else ''}. Reproduce: "
                    f"`python benchmarks/open_magvit2_parity.py --size {s} --frames {args.frames} "
                    "--seed-voken CHECKOUT`.\n\n" + table + "\n")


if __name__ == "__main__":
    main()
