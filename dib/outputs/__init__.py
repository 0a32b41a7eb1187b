"""Output plugins (stevedore group ``dib.outputs``) and checksums."""
__all__ = ["GROUP", "Output", "OutputContext", "checksums", "needs_disk", "registry",
           "validate_types"]
from dib.outputs.base import Output, OutputContext, checksums  # noqa: F401
from dib.outputs.plugins import GROUP, needs_disk, registry, validate_types  # noqa: F401
