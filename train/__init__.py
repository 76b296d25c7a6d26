"""Training entry point: ``python -m train <model name or config.toml>``; configs live in ``train/configs/``."""
