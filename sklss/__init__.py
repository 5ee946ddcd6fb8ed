"""sklss: molecular latent space simulators with a scikit-learn API."""

__version__ = "0.1.0"

from .encoder import SRVTransformer  # noqa: E402

__all__ = ["SRVTransformer", "__version__"]
