from .launcher import StepLauncher
from .settings import TessyConfig

__all__ = ["StepLauncher", "TessyConfig"]
