"""sklss: molecular latent space simulators with a scikit-learn API."""

__version__ = "0.1.0"

from .decoder import CWGANDecoder  # noqa: E402
from .encoder import SRVTransformer  # noqa: E402
from .interpolant import InterpolantPropagator  # noqa: E402
from .propagator import MDNPropagator  # noqa: E402
from .simulator import LatentSpaceSimulator, SimulationResult  # noqa: E402

__all__ = [
    "CWGANDecoder",
    "InterpolantPropagator",
    "LatentSpaceSimulator",
    "MDNPropagator",
    "SRVTransformer",
    "SimulationResult",
    "__version__",
]
