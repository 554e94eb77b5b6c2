"""dynbench: measure the efficiency claims of dynamic convolution, the same way for every model."""

__version__ = "0.1.0"

from dynbench.models import create_model, list_models, register_model  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "register_model"]
