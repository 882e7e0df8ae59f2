"""Visual tokens for off-the-shelf language models (the optional extra ``magvit2[llm]``).

Extend a Hugging Face tokenizer and causal LM with the tokenizer's factorized sub-tokens and
geometry markers (:func:`extend_vocabulary`), interleave text and token grids
(:meth:`VisualVocabulary.to_llm_ids` / :meth:`VisualVocabulary.from_llm_ids`), and export token
shards plus captions as JSONL of input ids (:func:`export_llm_dataset`). Only the parts that build
or load a model import ``transformers``.
"""
from magvit2.llm.export import export_llm_dataset, read_llm_rows
from magvit2.llm.vocab import (Interleaved, LLMSequenceError, VisualVocabConfig, VisualVocabulary,
                               extend_vocabulary)

__all__ = ["VisualVocabConfig", "VisualVocabulary", "Interleaved", "LLMSequenceError", "extend_vocabulary",
           "export_llm_dataset", "read_llm_rows"]
