"""Token generators: the MaskGIT-style masked token model, its sampler, and an autoregressive variant.

Their training losses live with the other losses, in :mod:`magvit2.losses.lm`."""
from magvit2.generation.ar import AROutput, AutoregressiveTokenModel
from magvit2.generation.ar_sampling import ARSampleOutput, ar_sample, filter_logits
from magvit2.generation.config import LMConfig
from magvit2.generation.masking import (
    frame_context_mask,
    flatten_grid,
    mask_schedule,
    masked_counts,
    random_mask,
    unflatten_grid,
)
from magvit2.generation.mlm import MaskedTokenModel, MLMOutput
from magvit2.generation.sampling import SampleOutput, maskgit_sample

__all__ = [
    "LMConfig",
    "MaskedTokenModel",
    "MLMOutput",
    "AutoregressiveTokenModel",
    "AROutput",
    "mask_schedule",
    "masked_counts",
    "random_mask",
    "frame_context_mask",
    "flatten_grid",
    "unflatten_grid",
    "maskgit_sample",
    "SampleOutput",
    "ar_sample",
    "ARSampleOutput",
    "filter_logits",
]
