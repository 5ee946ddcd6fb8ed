"""sklss: molecular latent space simulators with a scikit-learn API."""

from ._version import __version__
from .decoder import CWGANDecoder
from .encoder import SRVTransformer
from .interpolant import InterpolantPropagator
from .propagator import MDNPropagator
from .simulator import LatentSpaceSimulator, SimulationResult

__all__ = [
    "CWGANDecoder",
    "InterpolantPropagator",
    "LatentSpaceSimulator",
    "MDNPropagator",
    "SRVTransformer",
    "SimulationResult",
    "__version__",
]
