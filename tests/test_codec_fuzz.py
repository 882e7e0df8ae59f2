"""A seeded structured fuzz of the codec (mutated headers and payloads, CRCs recomputed, decoded fully):
every mutant is refused with a CodecError or decodes to the size its header states; nothing else.
Longer campaigns: benchmarks/codec_fuzz.py (`make fuzz`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from magvit2.codec import CodecError, DecodeLimits, read_header
from magvit2.codec.entropy import RangeReader
from magvit2.codec.fuzz import mutate, run_fuzz, seed_corpus
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer

#: what a mutant may ask for: a few times the seed files (10x14 and 8x8 frames, 5-7 frames)
LIMITS = DecodeLimits(max_pixels=32 * 32, max_frames=64, max_group_frames=32)


@pytest.fixture(scope="module")
def tok() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def targets(tok):
    return seed_corpus(tok)


def test_seed_corpus_decodes(tok, targets) -> None:
    assert [t.name for t in targets] == ["uniform", "static", "lm", "context"]
    report = run_fuzz(tok, targets, 0)
    assert report.inputs == 0
    for t in targets:
        assert read_header(t.data).prior_kind == t.name


def test_mutants_are_reproducible_and_mostly_pass_the_crcs(targets) -> None:
    data = targets[0].data
    mutants = [mutate(data, np.random.default_rng([7, i])) for i in range(200)]
    assert mutants[:20] == [mutate(data, np.random.default_rng([7, i])) for i in range(20)]
    assert sum(m != data for m in mutants) > 150
    crc_refused = 0
    for m in mutants:
        try:
            read_header(m, DecodeLimits(max_pixels=2**32 - 1, max_frames=2**32 - 1, max_group_frames=2**16))
        except CodecError as e:
            crc_refused += "CRC" in str(e)
    assert crc_refused < 30  # the mutants reach the checks behind the CRCs


def test_seeded_campaign_gives_only_codec_errors(tok, targets) -> None:
    report = run_fuzz(tok, targets, 400, seed=0, limits=LIMITS, input_timeout=60)
    assert report.crashes == [], report.summary()
    assert report.inputs == 400 and report.refused + report.decoded == 400
    assert report.decoded > 0 and report.refused > 200
    reached = " ".join(report.reasons)
    assert "not the coding" in reached and "too short" in reached and "invalid header" in reached, report.summary()
    assert report.rss_growth_mb < 512, report.summary()


def test_the_campaign_reports_other_exceptions(tok, targets, monkeypatch) -> None:
    def planted_bug(self) -> None:
        raise IndexError("planted")

    monkeypatch.setattr(RangeReader, "finish", planted_bug)
    report = run_fuzz(tok, targets, 30, seed=1, limits=LIMITS)
    assert report.crashes and all("IndexError: planted" in c[2] for c in report.crashes)
