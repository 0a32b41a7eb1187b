"""Output plugins (stevedore group ``dib.outputs``) and checksums."""
__all__ = ["GROUP", "Output", "OutputContext", "checksums", "file_digest", "needs_disk", "registry",
           "validate_types"]
from dib.outputs.base import Output, OutputContext, checksums, file_digest  # noqa: F401
from dib.outputs.plugins import GROUP, needs_disk, registry, validate_types  # noqa: F401
