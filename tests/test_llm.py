"""magvit2.llm: vocabulary extension of a Hugging Face tokenizer + causal LM, interleaving, export, CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from magvit2 import TokenizerConfig, VideoTokenizer  # noqa: E402
from magvit2.cli.main import main  # noqa: E402
from magvit2.errors import UserError  # noqa: E402
from magvit2.llm import (LLMSequenceError, VisualVocabConfig, VisualVocabulary, export_llm_dataset,  # noqa: E402
                         extend_vocabulary, read_llm_rows)
from magvit2.llm.captions import CaptionedDigits, motion_direction, parse_caption  # noqa: E402
from magvit2.train.tokenize import tokenize_dataset  # noqa: E402

TEXT = "a 7 moving up-left, fast"


def _gpt2(tie: bool = True):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=384, n_positions=128, n_embd=32, n_layer=1, n_head=2,
                                  bos_token_id=None, eos_token_id=None, tie_word_embeddings=tie)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _vocab(config: VisualVocabConfig | None = None) -> VisualVocabulary:
    return extend_vocabulary(transformers.ByT5Tokenizer(), None, config or VisualVocabConfig.preset("tiny"))


@pytest.mark.parametrize("tie", [True, False])
def test_extension_keeps_text_ids_and_embeddings(tie):
    tok, model = transformers.ByT5Tokenizer(), _gpt2(tie)
    ids_before = tok(TEXT).input_ids
    emb_before = model.get_input_embeddings().weight.detach().clone()
    head_before = model.get_output_embeddings().weight.detach().clone()
    x = torch.tensor([ids_before])
    logits_before = model(input_ids=x).logits
    vv = extend_vocabulary(tok, model, VisualVocabConfig.preset("tiny"))
    cfg = vv.config
    assert len(tok) == 384 + 2 + cfg.max_grid + sum(1 << b for b in cfg.bits_per_group)
    assert tok(TEXT).input_ids == ids_before
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == len(tok)
    assert torch.equal(emb[:384], emb_before)
    assert torch.equal(model.get_output_embeddings().weight[:384], head_before)
    # the model's distribution over text given text is unchanged; new logits exist beside it
    logits = model(input_ids=x).logits
    assert torch.allclose(logits[..., :384], logits_before, atol=1e-5)
    # documented init: new rows = mean of the text rows + N(0, 0.02^2) noise
    new = emb[384:].detach()
    dev = new - emb_before.mean(0)
    assert 0.015 < float(dev.std()) < 0.025 and float(dev.mean().abs()) < 0.002
    with pytest.raises(UserError, match="already has visual tokens"):
        extend_vocabulary(tok, model, cfg)


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_interleave_round_trip_is_exact(preset):
    vv = _vocab(VisualVocabConfig.preset(preset))
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 1 << vv.config.bits, (2, 3, 4), generator=g)
    b = torch.randint(0, 1 << vv.config.bits, (1, 5, 2), generator=g)
    ids = vv.to_llm_ids(TEXT, a, " then ", b, "done")
    assert ids[-1] == vv.eos_id and ids.count(vv.video_start) == 2
    assert len(vv.video_ids(a)) == 1 + 3 + a.numel() * vv.groups + 1  # factorized: g ids per token
    out = vv.from_llm_ids(ids)
    assert out.complete and not out.problems and len(out.segments) == 5
    assert out.segments[0] == TEXT and out.segments[2] == " then " and out.segments[4] == "done"
    assert torch.equal(out.segments[1], a) and torch.equal(out.segments[3], b)
    assert all(bool(m.all()) for m in out.valid)
    assert vv.to_llm_ids(*out.segments) == ids
    # the ids survive a save/load of the extended tokenizer
    assert VisualVocabulary(vv.tokenizer, vv.config).group_offsets == vv.group_offsets


def test_truncated_video_raises_or_decodes_best_effort_with_a_flag():
    vv = _vocab()
    tokens = torch.randint(0, 256, (2, 3, 3), generator=torch.Generator().manual_seed(1))
    full = vv.to_llm_ids("cap", tokens, eos=False)
    cut = full[: 3 + 1 + 3 + 2 * 7 + 1]  # 'cap', <|video|>, 3 sizes, 7 tokens and half of the 8th
    with pytest.raises(LLMSequenceError, match=r"truncated: expected 36 sub-tokens .* got 15"):
        vv.from_llm_ids(cut)
    out = vv.from_llm_ids(cut + [vv.eos_id], strict=False, fill=0)  # a model that stopped early
    assert not out.complete and "truncated" in out.problems[0]
    video, valid = out.videos[0], out.valid[0]
    assert video.shape == (2, 3, 3) and valid.shape == (2, 3, 3)  # the stated grid, never another shape
    assert int(valid.sum()) == 7
    assert torch.equal(video.flatten()[:7], tokens.flatten()[:7]) and bool((video.flatten()[7:] == 0).all())
    # text after a cut video ends it too; the text is kept
    out = vv.from_llm_ids(full[:20] + vv.text_ids(" more"), strict=False)
    assert out.text == "cap more" and not out.complete


def test_malformed_sequences_are_named():
    vv = _vocab()
    tokens = torch.randint(0, 256, (1, 2, 2), generator=torch.Generator().manual_seed(2))
    ids = vv.to_llm_ids(tokens, eos=False)
    swapped = ids[:4] + [ids[5], ids[4]] + ids[6:]  # group-1 sub-token where group 0 belongs
    with pytest.raises(LLMSequenceError, match="not a group-0 sub-token"):
        vv.from_llm_ids(swapped)
    with pytest.raises(LLMSequenceError, match="size markers"):
        vv.from_llm_ids([ids[0], ids[1]] + ids[4:])
    with pytest.raises(LLMSequenceError, match="no <\\|/video\\|> end marker"):
        vv.from_llm_ids(ids[:-1] + vv.text_ids("x"))
    with pytest.raises(LLMSequenceError, match="outside any video"):
        vv.from_llm_ids(vv.text_ids("x") + ids[4:6])
    out = vv.from_llm_ids([ids[0], ids[1]] + ids[4:], strict=False)
    assert out.videos == [] and not out.complete  # no geometry: dropped, flagged
    with pytest.raises(UserError, match="max_grid"):
        vv.video_ids(torch.zeros(1, 1, 9, dtype=torch.long))


class _Clips(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {"video": torch.rand(3, 5, 16, 16, generator=g) * 2 - 1, "label": i % 2, "index": i}


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig.preset("tiny")).eval()
    out = tmp_path_factory.mktemp("tokens")
    tokenize_dataset(tok, _Clips(), out, shard_size=2, batch_size=2, progress=False)
    return out


def test_export_streams_resumes_and_round_trips(token_dir, tmp_path):
    manifest = json.loads((token_dir / "manifest.json").read_text())
    vv = _vocab(VisualVocabConfig(bits=manifest["bits"], groups=2, max_grid=max(manifest["grid"])))
    captions = [f"clip {i}" for i in range(5)]
    out = export_llm_dataset(token_dir, vv, tmp_path / "llm", captions=captions)
    rows = list(read_llm_rows(out))
    assert len(rows) == 10 and sorted(p.name for p in out.glob("part_*.jsonl")) == [
        "part_00000.jsonl", "part_00001.jsonl", "part_00002.jsonl"]
    from safetensors.torch import load_file

    first = load_file(str(token_dir / "shard_00000.safetensors"))["tokens"][1].long()
    t2v = next(r for r in rows if r["index"] == 1 and r["task"] == "t2v")
    got = vv.from_llm_ids(t2v["input_ids"])
    assert got.text == "clip 1" and torch.equal(got.videos[0], first)
    assert t2v["input_ids"][: t2v["prompt_length"]] == vv.text_ids("clip 1")
    v2t = next(r for r in rows if r["index"] == 1 and r["task"] == "v2t")
    assert v2t["input_ids"][v2t["prompt_length"]:] == vv.to_llm_ids("clip 1")
    # resumable: a missing part is rewritten identically, finished parts are kept
    before = (out / "part_00001.jsonl").read_text()
    (out / "part_00001.jsonl").unlink()
    stamp = (out / "part_00000.jsonl").stat().st_mtime_ns
    export_llm_dataset(token_dir, vv, out, captions=captions)
    assert (out / "part_00001.jsonl").read_text() == before
    assert (out / "part_00000.jsonl").stat().st_mtime_ns == stamp
    # other settings into the same directory: refused, nothing overwritten
    with pytest.raises(UserError, match="other settings"):
        export_llm_dataset(token_dir, vv, out, captions=captions, tasks=["t2v"])
    with pytest.raises(UserError, match="expected 5 captions"):
        export_llm_dataset(token_dir, vv, tmp_path / "other", captions=captions[:3])
    # the rows load with the extended tokenizer saved beside them
    loaded = transformers.AutoTokenizer.from_pretrained(str(out / "tokenizer"), local_files_only=True)
    assert VisualVocabulary(loaded, vv.config).from_llm_ids(t2v["input_ids"]).text == "clip 1"


def test_cli_export(token_dir, tmp_path, capsys):
    caps = tmp_path / "captions.txt"
    caps.write_text("".join(f"item {i}\n" for i in range(5)))
    out = tmp_path / "llm"
    assert main(["llm", "export", str(token_dir), "-o", str(out), "--captions", str(caps), "--tasks", "v2t"]) == 0
    assert len(list(read_llm_rows(out))) == 5
    assert main(["llm", "export", str(token_dir), "-o", str(out), "--captions", str(caps)]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["llm", "export", str(token_dir), "-o", str(tmp_path / "x"), "--tasks", "t2i"]) == 2


def test_captioned_digits_and_checks():
    ds = CaptionedDigits("test", num_samples=24)
    items = [ds[i] for i in range(24)]
    videos = torch.stack([it["video"] for it in items])
    for it, moved in zip(items, motion_direction(videos)):
        parsed = parse_caption(it["caption"])
        assert parsed is not None and parsed.digit == it["label"] and parsed.direction == moved
        assert it["caption"] == ds.caption_of(it["index"])
    assert motion_direction(videos[:, :, :1].repeat(1, 1, 9, 1, 1)) == ["still"] * 24
    assert parse_caption("a 7 moving sideways, fast") is None


def test_readme_example_runs():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Using tokens with a language model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
