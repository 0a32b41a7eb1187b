"""Output plugins (stevedore group ``dib.outputs``) and checksums."""
__all__ = ["GROUP", "Output", "OutputContext", "checksums", "needs_disk", "registry",
           "validate_types"]
from dib.outputs.base import (GROUP, Output, OutputContext, checksums,  # noqa: F401
                              needs_disk, registry, validate_types)
