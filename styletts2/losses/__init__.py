"""StyleTTS2 training losses. Each loss returns its unweighted value; ``.weight`` (or ``ce_weight`` /
``dur_weight``) holds upstream's lambda, which the training step multiplies in."""
from styletts2.losses.adversarial import (DiscriminatorLoss, GeneratorLoss, feature_matching_loss,
                                          lsgan_discriminator_loss, lsgan_generator_loss,
                                          tprls_discriminator_loss, tprls_generator_loss)
from styletts2.losses.duration import (DurationLoss, MonotonicAlignmentLoss, S2SCrossEntropyLoss,
                                       ordinal_targets)
from styletts2.losses.prosody import F0ReconstructionLoss, NormReconstructionLoss, StyleReconstructionLoss
from styletts2.losses.resample import SincResample
from styletts2.losses.slm import WavLMLoss
from styletts2.losses.spectral import MelSpectralConvergenceLoss, MultiResolutionSTFTLoss, spectral_convergence

__all__ = [
    "DiscriminatorLoss", "DurationLoss", "F0ReconstructionLoss", "GeneratorLoss",
    "MelSpectralConvergenceLoss", "MonotonicAlignmentLoss", "MultiResolutionSTFTLoss",
    "NormReconstructionLoss", "S2SCrossEntropyLoss", "SincResample", "StyleReconstructionLoss",
    "WavLMLoss", "feature_matching_loss", "lsgan_discriminator_loss", "lsgan_generator_loss",
    "ordinal_targets", "spectral_convergence", "tprls_discriminator_loss", "tprls_generator_loss",
]
