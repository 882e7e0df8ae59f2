"""Video understanding with the tokenizer: token-input classifiers, pixel baselines, masked pre-training.

MAGVIT-2's third use of its tokens (Sec. 4.4 of the paper): as inputs to a video
transformer, and as targets of BEVT-style masked pre-training of a pixel-input one.
See :mod:`magvit2.understanding.config` for the configs and presets.
"""
from magvit2.understanding.config import ClassifierConfig, ClassifierTrainConfig, PretrainConfig
from magvit2.understanding.evaluate import ClassificationReport, evaluate_classifier, write_report
from magvit2.understanding.model import ClassifierOutput, ClipClassifier, TubeletEmbedding, VideoClassifier
from magvit2.understanding.pretrain import MaskedVideoModel, PretrainOutput, masked_pixel_loss, masked_token_loss, sample_mask
from magvit2.understanding.trainer import ClassifierTrainer, ClipCache, PretrainTrainer

__all__ = [
    "ClassificationReport",
    "ClassifierConfig",
    "ClassifierOutput",
    "ClassifierTrainConfig",
    "ClassifierTrainer",
    "ClipCache",
    "ClipClassifier",
    "MaskedVideoModel",
    "PretrainConfig",
    "PretrainOutput",
    "PretrainTrainer",
    "TubeletEmbedding",
    "VideoClassifier",
    "evaluate_classifier",
    "masked_pixel_loss",
    "masked_token_loss",
    "sample_mask",
    "write_report",
]
