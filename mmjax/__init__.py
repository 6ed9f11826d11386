"""mmjax: pure-functional JAX/Flax multimodal recommendation."""

__version__ = "0.1.0"
