"""StyleTTS2: style diffusion and adversarial training with speech language models."""

__version__ = "0.1.0"
